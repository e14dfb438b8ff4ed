<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="fr">
    <context>
        <name>GeoCLIP</name>
        <message>
            <location filename="../../geoclip_qgis/gui/background.py" />
            <source>GeoCLIP: building coarse world fields in the background (pauses for your runs)</source>
            <translation>GeoCLIP : construction des champs mondiaux en arrière-plan (en pause pendant vos calculs)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>what you know, e.g. signs in Cyrillic, a snowy pass</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Words fused with each photo: the photo's answer times the words' answer, raised to the weight. Weight 0 gives the photo's answer alone.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>How much the hint counts against the photo (1: as much)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>countries or regions, e.g. Chile; Argentina, or FR, DE-BY</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Only places inside these countries or first-level regions (names or ISO codes, separated by ;). The share of the probability that fell outside is reported.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>lat, lon</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Only places within the radius of this point (latitude, longitude in degrees)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>no radius</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Click the map to set the point</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Hint</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>weight</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Limit to</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>Near</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <source>radius</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/case_options.py" />
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Give both a point (lat, lon) and a radius to limit the answer near a point.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>GeoCLIP geolocation</source>
            <translation>Géolocalisation GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Add photos…</source>
            <translation>Ajouter des photos…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Add folder…</source>
            <translation>Ajouter un dossier…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Clear</source>
            <translation>Vider</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>…or describe a place, e.g. snowy alpine village</source>
            <translation>…ou décrivez un lieu, p. ex. village alpin enneigé</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Likelihood raster</source>
            <translation>Raster de vraisemblance</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Also map the probability density and its 50 % / 90 % confidence regions (photos of one place are fused)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Why</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Also map, on each photo, what drove its top place (shown in the photo viewer and the report); about twice the time of a run</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Photos are one trip</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Answer the photos together, in the order their EXIF times give (file order without times): two photos taken an hour apart cannot be farther apart than the speed allows; photos with GPS fix their neighbours. Adds a track layer.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> km/h</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>The fastest travel between two photos of the trip (900 km/h: an airliner; 120 km/h: a car)</source>
            <translation>Le déplacement le plus rapide entre deux photos du voyage (900 km/h : un avion de ligne ; 120 km/h : une voiture)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Anywhere</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>The map extent</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>The active polygon layer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Restrict the answer to where the photo must be; the share of the probability that fell outside is reported</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>in a GeoPackage next to the project</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>as memory layers (lost on exit)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Run</source>
            <translation>Lancer</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>Cancel</source>
            <translation>Annuler</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Ready.</source>
            <translation>Prêt.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Raw top-k (gallery points) instead of places</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Report (PDF)…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>A PDF to hand on: a case page, then one page per photo (photo, what drove the answer, maps, places, EXIF, SHA-256, model)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Photos to geolocate</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Folder of photos</source>
            <translation>Dossier de photos</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>; no layer added</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Mapping the likelihood…</source>
            <translation>Calcul de la carte de vraisemblance…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Photos (drop files or folders here)</source>
            <translation>Photos (déposez ici des fichiers ou des dossiers)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Top-k</source>
            <translation>Top-k</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Device</source>
            <translation>Processeur</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>at most</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Area of interest</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Keep results</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Photo</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Add photos or type a description first.</source>
            <translation>Ajoutez d’abord des photos ou saisissez une description.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Sending the request to the engine…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Starting the engine…</source>
            <translation>Démarrage du moteur…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Cancelling… finished rows are kept.</source>
            <translation>Annulation… les lignes terminées sont conservées.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Cancelled while waiting; nothing ran, nothing added.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>{} query geolocated</source>
            <translation>{} requête géolocalisée</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>{} queries geolocated</source>
            <translation>{} requêtes géolocalisées</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> (cancelled; finished rows kept)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> in {:.1f} s.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>GeoCLIP likelihood raster</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Likelihood raster cancelled; no raster added.</source>
            <translation>Raster de vraisemblance annulé ; aucun raster ajouté.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Likelihood raster added; densest cell {:.4f}, {:.4f}.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Photos</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Select a polygon layer in the Layers panel for the area of interest.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>GeoCLIP: {} photo</source>
            <translation>GeoCLIP : {} photo</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>GeoCLIP: {} photos</source>
            <translation>GeoCLIP : {} photos</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>GeoCLIP: “{}”</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>{} of {} photo geolocated</source>
            <translation>{} sur {} photo géolocalisée</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>{} of {} photos geolocated</source>
            <translation>{} sur {} photos géolocalisées</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>, {} could not be read</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>; {:.0%} of the probability fell outside the area of interest</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>; hint “{}”, weight {:g}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>The points stay.</source>
            <translation>Les points restent.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>likelihood</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>The selected layer has no polygon for the area of interest.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>{} photo could not be read; see the GeoCLIP panel</source>
            <translation>{} photo illisible ; voir le panneau GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>{} photos could not be read; see the GeoCLIP panel</source>
            <translation>{} photos illisibles ; voir le panneau GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> ({})</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> (cancelled after {}/{}; finished rows kept)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source> ({}, {}).</source>
            <translation> ({}, {}).</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Ran on {} in {}: {}</source>
            <translation>Exécuté sur {} en {} : {}</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>Likelihood raster cancelled at step {}/{}; no raster added.</source>
            <translation>Raster de vraisemblance annulé à l’étape {}/{} ; aucun raster ajouté.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>{:.0%} of the probability fell outside the area of interest.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/dock.py" />
            <source>90 % region: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/photo_list.py" />
            <source>Drop photos or folders here</source>
            <translation>Déposez ici des photos ou des dossiers</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Preparing the gallery of places (once per cache folder)…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Loading the model (CLIP, the first time in a session)…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Geolocating the photos…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: encoding the query…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: scoring the map cells…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: writing the map…</source>
            <translation>Raster de vraisemblance : écriture de la carte…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: tracing the 50 % / 90 % regions…</source>
            <translation>Raster de vraisemblance : tracé des régions à 50 % / 90 %…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Geolocated {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: {:,} of {:,} map cell scored</source>
            <translation>Raster de vraisemblance : {:,} maille sur {:,} calculée</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Likelihood raster: {:,} of {:,} map cells scored</source>
            <translation>Raster de vraisemblance : {:,} mailles sur {:,} calculées</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>Geolocated</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>; geolocating the next ones… {:.0f} s</source>
            <translation> ; géolocalisation des suivantes… {:.0f} s</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/progress_line.py" />
            <source>{} {:.0f} s</source>
            <translation>{} {:.0f} s</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>Photo / query</source>
            <translation>Photo / requête</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>Rank</source>
            <translation>Rang</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <location filename="../../geoclip_qgis/processing/places_like_here.py" />
            <source>Place</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>Probability</source>
            <translation>Probabilité</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>EXIF GPS (km)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>90 % region</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>Trip (joint answer)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>{}, {} part</source>
            <translation>{}, {} partie</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>{}, {} parts</source>
            <translation>{}, {} parties</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>{:,.1f} M km²</source>
            <translation>{:,.1f} M km²</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>{:,.0f} km²</source>
            <translation>{:,.0f} km²</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/results_table.py" />
            <source>alone: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>The engine is not installed — open Plugins › GeoCLIP › Engine and models… and click Install engine.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>failed</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} photo (running)</source>
            <translation>GeoCLIP · {} photo (en cours)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} photos (running)</source>
            <translation>GeoCLIP · {} photos (en cours)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · “{}”</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} of {} photo</source>
            <translation>GeoCLIP · {} sur {} photo</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} of {} photos</source>
            <translation>GeoCLIP · {} sur {} photos</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} photo</source>
            <translation>GeoCLIP · {} photo</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>GeoCLIP · {} photos</source>
            <translation>GeoCLIP · {} photos</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run.py" />
            <source>cannot read back {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>places</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>summary, one row per photo</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>raw top-k</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>confidence regions</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>trip track</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>Trip: {} photo in time order</source>
            <translation>Voyage : {} photo dans l'ordre du temps</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>Trip: {} photos in time order</source>
            <translation>Voyage : {} photos dans l'ordre du temps</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>, {} without a time answered alone</source>
            <translation>, {} sans heure traitée(s) seule(s)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>{} photo could not be read</source>
            <translation>{} photo illisible</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>{} photos could not be read</source>
            <translation>{} photos illisibles</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>Kept in {}.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/dock/run_layers.py" />
            <source>Not saved ({}); the layers are memory layers.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>GeoCLIP engine and models</source>
            <translation>Moteur et modèles GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Install engine</source>
            <translation>Installer le moteur</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Download CLIP (1.7 GB)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Use a CLIP folder I have…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Build world field</source>
            <translation>Construire le champ mondial</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Encode the world at 0.1° once (6.7 GB on disk, minutes on a GPU, 8–15 min on a 2-core CPU, resumable); then 0.1° world likelihood and similarity rasters take seconds.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Check again</source>
            <translation>Vérifier à nouveau</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Copy diagnostics</source>
            <translation>Copier le diagnostic</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>GeoCLIP: checking the engine</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>no NVIDIA driver</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>The engine install</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>The CLIP download</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>The world field build</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Cancel it</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Keep it running</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Don't close</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Keep it running: it goes on in the background (QGIS's task bar shows it; Engine and models… shows this window again).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Diagnostics copied to the clipboard (home folder shown as ~).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>checking…</source>
            <translation>vérification…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source> — starting…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>the engine did not answer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>unknown: the engine check failed (the log below says why; Check again)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>needs the GeoCLIP weights</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Looking for an NVIDIA driver…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>GeoCLIP: installing the engine</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Engine installed.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Install cancelled.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Engine (Python + PyTorch)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>CLIP ViT-L/14 backbone</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>GeoCLIP weights</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>World location field (0.1°)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Checking the engine {}…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>The engine check failed: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>NVIDIA driver {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Installing the engine into {} ({}; PyTorch build: {}).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>{} is still running.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>needs the engine</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>The engine's last messages:</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>not on this computer (no CLIP folder set, none in the Hugging Face cache). Fix: Download CLIP, or Use a CLIP folder I have…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Fix: Download CLIP, or Use a CLIP folder I have…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/dialog.py" />
            <source>Step failed (exit code {}). See the log above; nothing else was changed.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>GeoCLIP: downloading CLIP ViT-L/14</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>CLIP downloaded and checked.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>Folder holding openai/clip-vit-large-patch14</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>no connection to the model host ({}): check the network or proxy, or use a CLIP folder you already have</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <location filename="../../geoclip_qgis/gui/report.py" />
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>cancelled</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>Downloading {} into {} (resumes if interrupted).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>Downloading {} into the Hugging Face cache (resumes if interrupted; Cancel keeps the part done).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>cancelled; the part done is kept and resumes next time</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>CLIP downloaded and checked ({:,.0f} MiB).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>Download stopped: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>download cancelled</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/downloads.py" />
            <source>Using CLIP from {}; checking it…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>GeoCLIP: checking the world field</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>GeoCLIP: building the world location field</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>Encoding the world at 0.1° (resumable: Cancel keeps the rows done).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>not built: 0.1° world maps are computed cell by cell (minutes on a CPU). Building it once takes {:.1f} GB of disk.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>Field build paused; click Build world field to resume.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>World location field built.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>partly built ({:.0%}): Build resumes where it stopped.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>damaged ({}); Build repairs it.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>Field build stopped: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/field_panel.py" />
            <source>&lt;span style='color:#080'&gt;✔&lt;/span&gt; built ({:.1f} GB, {}): 0.1° world rasters are read from it</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>QGIS runs Python {}, newer than the {}.{} to {}.{} the engine is tested with (PyTorch may have no release for it yet). Set an engine Python {}.{} to {}.{} you installed yourself in GeoCLIP &gt; Settings.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Downloading the GeoCLIP weights (the geoclip 1.3.0 wheel from PyPI, 40 MB)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Unpacking and checking the GeoCLIP weights</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>GeoCLIP: looking for an NVIDIA driver</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Apple GPU (MPS) / CPU</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>QGIS runs Python {}, and the engine needs Python {}.{} to {}.{} (PyTorch and the other packages have no release for older Pythons). Install a newer QGIS, or set an engine Python you installed yourself in GeoCLIP &gt; Settings.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Creating the environment</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Updating pip</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Installing transformers, rasterio and the rest</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/manager/install_plan.py" />
            <source>Installing PyTorch ({})</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>GeoCLIP: places like here</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>Still computing the previous click…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>Places like here cancelled; nothing added.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>Finding places like {:.4f}, {:.4f}…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/map_tool.py" />
            <source>Places like {:.3f}, {:.3f}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>GeoCLIP photo</source>
            <translation>Photo GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>Select a GeoCLIP prediction to see its photo.</source>
            <translation>Sélectionnez une prédiction GeoCLIP pour voir sa photo.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>Show what drove the answer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>A heat map of the parts of the photo that raised the top place's score most (runs with 'Why' ticked). The model sees the centre square; the sides are dimmed.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>(text query: no photo)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>{} — rank {}, p = {:.4f}, {:.5f}, {:.5f}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/photo_viewer.py" />
            <source>Photo not found: {}</source>
            <translation>Photo introuvable : {}</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Case report</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>PDF files (*.pdf)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>Making the case report…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>GeoCLIP case report</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>GeoCLIP: which model answered</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>Run some photos first, or select a GeoCLIP summary layer, to make a report.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>Case report written: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>The case report was not written: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/report.py" />
            <source>unknown reason</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>GeoCLIP settings</source>
            <translation>Paramètres de GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Python of the engine environment</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Engine Python</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Precision</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>CLIP ViT-L/14 folder</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>CLIP folder</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>GeoCLIP weights folder (empty: the geoclip package's)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>'default' (100K Flickr points), 'fibonacci:N' (uniform), or a CSV with LAT,LON</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Gallery</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Cache folder</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Build coarse world fields (0.5°, 0.25°) in the background</source>
            <translation>Construire en arrière-plan les champs mondiaux grossiers (0,5°, 0,25°)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>After the engine starts it encodes the world once at low priority, pausing for your runs, so that world and continent maps take seconds; the task bar shows it and can cancel it.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>GeoCLIP: checking CUDA</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Asking the engine whether CUDA is usable…</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>Automatic precision here: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>CUDA is usable: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/settings_dialog.py" />
            <source>CUDA is not usable: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/tasks.py" />
            <source>{} (cancelled)</source>
            <translation>{} (annulée)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/toolbar.py" />
            <source>GeoCLIP</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/toolbar.py" />
            <source>GeoCLIP geolocation panel</source>
            <translation>Panneau de géolocalisation GeoCLIP</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/toolbar.py" />
            <source>Places like here (click the map)</source>
            <translation>Lieux semblables à celui-ci (cliquez sur la carte)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/toolbar.py" />
            <source>Engine and models…</source>
            <translation>Moteur et modèles…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/gui/toolbar.py" />
            <source>Settings…</source>
            <translation>Paramètres…</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Weights SHA-256:</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Maps: the places in red, numbered as in the table; the EXIF position as a blue cross.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>none</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Model: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>GeoCLIP for QGIS {} · made {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>EXIF time: {} · camera: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Hints and constraints: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>none, the pixels alone</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Answer: {} — {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>EXIF GPS: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>The places hold {} of the probability; elsewhere {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>90 % confidence region: {} km² in {} part(s)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>area of interest: {} of the probability fell outside</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>Trip: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>File SHA-256:</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>{} photo(s) · made {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source> — {} km from the answer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>{} photo(s) answered, {} could not be read.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>… and {} more (one page each)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/layers/report/layout.py" />
            <source>the layout could not be exported</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/plugin.py" />
            <source>The GeoCLIP panel could not be loaded:
{}</source>
            <translation>Le panneau GeoCLIP n’a pas pu être chargé :
{}</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/plugin.py" />
            <source>The panel could not be loaded ({}: {}); Processing algorithms still work. Details are in the GeoCLIP log.</source>
            <translation>Le panneau n’a pas pu être chargé ({} : {}) ; les algorithmes de traitement fonctionnent. Détails dans le journal GeoCLIP.</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Plugin setting (automatic unless set)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Geolocation</source>
            <translation>Géolocalisation</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Maps</source>
            <translation>Cartes</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Location fields</source>
            <translation>Champs de localisation</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Precision (auto: the fastest that passes the fidelity gate on this machine)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Extent (empty: the whole world)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Cell size (degrees)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Area of interest (polygons; the answer is restricted to them)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Predictions per input (top-k)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>GPS gallery: 'default' (100K Flickr points), 'fibonacci:N', or a CSV path</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>CLIP ViT-L/14 folder (empty: plugin setting / Hugging Face cache)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>The area of interest has no polygon.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>{}: {}. Choose another file.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/base.py" />
            <source>Could not mark {} as a GeoCLIP layer: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Build location field</source>
            <translation>Construire un champ de localisation</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Runs GeoCLIP's location encoder once over every cell of the extent at this cell size and stores the result in the engine's cache. Likelihood, 'places like here' and PCA rasters on that lattice are then read from it: the whole world at 0.1° takes about a second instead of minutes on a CPU. The world at 0.1° needs 6.7 GB of disk and takes 8–15 minutes on a 2-core CPU (seconds on a GPU). Cancelling keeps the rows done: run it again to resume. Needs no CLIP backbone.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Field folder</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Complete</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Cancelled: the rows done are kept; run the algorithm again to resume.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/build_location_field.py" />
            <source>Location field ready: {} ({:.2f} GiB)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Limit to countries or regions (names or ISO codes, separated by ;)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Near a point (lat, lon in degrees)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Radius around the point (km)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Hint in words, fused with each photo (e.g. signs in Cyrillic)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_params.py" />
            <source>Hint weight (0: the photo alone; 1: as much as the photo)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Case report (PDF)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>A PDF to hand on, from a GeoCLIP summary layer (one row per photo): a case page, then one page per photo with the photo, what drove its answer (when the run asked 'Why'), a map of its places and regions, the places table, EXIF time, camera and GPS with the distance to the answer, the photo's SHA-256, the model, the weights' SHA-256, the software version and the date. The layout comes from the plugin's template (case_report.qpt), which can be edited in the layout designer.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Asking the engine which model answered</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Summary layer (one row per photo)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Places layer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Confidence regions layer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>The summary layer must be a GeoCLIP summary (one row per photo).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Name the case report .pdf</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>Writing {} pages</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/case_report.py" />
            <source>The PDF was not written: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Geolocate photos</source>
            <translation>Géolocaliser des photos</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Predicts where each photo was taken with GeoCLIP: the top-k most likely places as points, ranked, with their probability. Photos come from a folder (optionally with sub-folders), a list of files, or a layer with a field holding photo paths. Where a photo has EXIF GPS, its position and the distance to each prediction are added. Each prediction is named offline (country, region, nearest populated place). Optional outputs: the distinct places (gallery points within 25 km merged, probabilities summed, with names) and one summary row per photo (best place, its name and probability, or why the photo failed). An optional area of interest (polygons) restricts the answer to it: probabilities renormalise inside, and the share that fell outside is reported; countries or regions by name or ISO code (Limit to) and a point with a radius do the same. A hint in words is fused with each photo (the photo's answer times the hint's, raised to its weight). Photos that cannot be read are listed, with the reason; the batch goes on. Cancelling keeps the rows already written. An existing GeoPackage output keeps its other layers. Photos of one trip can be answered jointly: in the order of their EXIF capture times (file order when none has one), two consecutive photos cannot lie farther apart than the travel speed allows in the time between them, and photos with EXIF GPS fix their neighbours. The summary then holds each photo's joint answer beside its own (trip_ columns; photos without a time are answered alone, and the note says so), and the trip track is a line through the joint answers in time order.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Distinct places (with names)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Summary (one row per input)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Include sub-folders</source>
            <translation>Inclure les sous-dossiers</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Photo files</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Layer with photo paths</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Photo path field</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Resume: skip photos already in this earlier result layer</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Predicted places</source>
            <translation>Lieux prédits</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Photos that could not be read</source>
            <translation>Photos illisibles</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>The photos are one trip (answer them jointly in time order)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Trip: fastest travel between two photos (km/h)</source>
            <translation>Voyage : déplacement le plus rapide entre deux photos (km/h)</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Trip track</source>
            <translation>Trajet du voyage</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>What drove each answer: a heat map per photo into this folder (about twice the time)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Photos geolocated</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>No photos to geolocate: choose a folder with photos, photo files, or a layer with a photo path field.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>The trip could not be answered (the run stopped early).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Choose the field that holds the photo paths</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Geolocating {} photo(s)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>{} geolocated, {} could not be read{}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source> (cancelled)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Trip: {} photo(s) in time order, {} answered alone</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Resume: {} photo(s) already done, {} to go</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Area of interest: on average {:.1%} of the probability fell outside it (the rest is renormalised inside)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_photos.py" />
            <source>Folder not found: {}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Geolocate text query</source>
            <translation>Géolocaliser une description</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Finds the places that best match a description such as 'snowy alpine village' or 'rice terraces': GeoCLIP's text tower puts the description in the same space as photos, and the top-k gallery points are returned. Several queries can be given, one per line. Optionally writes a likelihood raster (probability per km²) for the first query. Optional outputs: the distinct places (with offline names) and one summary row per query; an optional area of interest (polygons) restricts the answer to it and reports the share of the probability that fell outside.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Text description(s), one per line</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Matching places</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Type a description, e.g. 'snowy alpine village'</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/geolocate_text.py" />
            <source>Densest cell: {:.4f}, {:.4f}</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Maps how likely each place is for the given photo(s) or text, as probability density per km² (area-aware: the raster times cell area sums to 1 over the extent). Several photos of one place are fused: their likelihoods multiply (their GeoCLIP scores add), giving a sharper map and one best estimate. When a location field covers the extent at this cell size (Plugins › GeoCLIP › Engine and models… › Build world field, or the Build location field algorithm), the map is read from it in seconds and the extent snaps to its 0.1° lattice; otherwise large grids are computed coarse-to-fine: exact where the probability mass is. Optional: an area of interest (polygons) that restricts the map (the share of the probability outside it is reported), and the confidence regions — the smallest areas holding 50 % and 90 % (settable) of the probability — as polygons with their area in km².</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Photos (of one place)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>…or a text description</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Method</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <location filename="../../geoclip_qgis/processing/places_like_here.py" />
            <source>Write a Cloud Optimised GeoTIFF</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Confidence levels of the regions (0-1, comma-separated)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Confidence regions</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Best estimate latitude</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Best estimate longitude</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Give either photos or a text description (not both).</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Levels must be numbers between 0 and 1, e.g. 0.5,0.9</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Best estimate: {:.5f}, {:.5f} ({} cells scored, {})</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>Area of interest: {:.1%} of the probability fell outside it</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>{:.0%} confidence region: {:,.0f} km² in {} part(s)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/likelihood_raster.py" />
            <source>The confidence regions could not be read back ({})</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Rasterise location-encoder features</source>
            <translation>Rastériser les descripteurs de l’encodeur de lieux</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Evaluates GeoCLIP's location encoder on every cell and writes its 512-dimensional embedding: either chosen dimensions as float bands (all 512 by default), or the first three principal components as an RGB image that shows the geography the model learned. Needs no CLIP backbone. Computed in tiles.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Output</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Dimensions 0-511, comma-separated (empty: all)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Unit-normalise the embeddings</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Feature raster</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/location_features.py" />
            <source>Bands must be integers 0-511, e.g. 0,1,2</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/places_like_here.py" />
            <source>Places like here</source>
            <translation>Lieux semblables</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/places_like_here.py" />
            <source>Cosine similarity between the GeoCLIP location feature of a point and that of every cell: 1 at the point itself, high where the model sees similar places (climate, landscape, culture as photos show them). Needs no CLIP backbone.</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/processing/places_like_here.py" />
            <source>Similarity raster</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>Auto (best available)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>CPU</source>
            <translation>CPU</translation>
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>CUDA device 0</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>Apple GPU (MPS)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>CUDA device 1</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>Auto (fastest that keeps the answers)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>fp32 (exact)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>bf16</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>int8</source>
            <translation type="unfinished" />
        </message>
        <message>
            <location filename="../../geoclip_qgis/shared/defaults.py" />
            <source>fp16 (GPU)</source>
            <translation type="unfinished" />
        </message>
        <message>
            <source>GeoCLIP: building coarse world fields in the background (low priority)</source>
            <translation type="obsolete">GeoCLIP : construction des champs mondiaux en arrière-plan (priorité basse)</translation>
        </message>
        <message>
            <source>Auto</source>
            <translation type="obsolete">Auto</translation>
        </message>
        <message>
            <source>CUDA</source>
            <translation type="obsolete">CUDA</translation>
        </message>
        <message>
            <source>Lat</source>
            <translation type="obsolete">Lat</translation>
        </message>
        <message>
            <source>Lon</source>
            <translation type="obsolete">Lon</translation>
        </message>
        <message>
            <source>EXIF GPS distance (km)</source>
            <translation type="obsolete">Distance au GPS EXIF (km)</translation>
        </message>
    </context>
</TS>
