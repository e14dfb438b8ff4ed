"""The result tables, one definition each: (name, type) in column order. Standard library only (no imports at all),
because both the engine (core/io/results.py, the Ray batch) and the QGIS side (layers/results.py) build their
tables from it."""

LAYER_MARK = "GEOCLIP_QGIS"  # GeoPackage layer metadata key: a layer carrying it is ours to replace, no other

# The raw top-k gallery points, one row per rank and query.
PREDICTION_FIELDS = [
    ("source", "str"),
    ("kind", "str"),
    ("rank", "int"),
    ("probability", "float"),
    ("lat", "float"),
    ("lon", "float"),
    ("gallery_index", "int"),
    ("exif_lat", "float"),
    ("exif_lon", "float"),
    ("error_km", "float"),
    ("country", "str"),
    ("region", "str"),
    ("place", "str"),
    ("place_km", "float"),
]
# Distinct places (core/answers/places.py): one row per place and query, ranked by summed probability.
PLACE_FIELDS = [
    ("source", "str"), ("kind", "str"), ("rank", "int"), ("probability", "float"), ("lat", "float"),
    ("lon", "float"), ("n_points", "int"), ("spread_km", "float"), ("best_lat", "float"), ("best_lon", "float"),
    ("country", "str"), ("region", "str"), ("place", "str"), ("place_km", "float"), ("label", "str"),
    ("exif_lat", "float"), ("exif_lon", "float"), ("error_km", "float"),
]
# One row per photo or text: the layer an analyst sorts and filters (failed photos included, with the reason).
SUMMARY_FIELDS = [
    ("source", "str"), ("kind", "str"), ("status", "str"), ("label", "str"), ("probability", "float"),
    ("lat", "float"), ("lon", "float"), ("places_mass", "float"), ("country", "str"), ("region", "str"),
    ("place", "str"), ("region90_km2", "float"), ("region90_parts", "int"), ("aoi_outside", "float"),
    ("exif_lat", "float"), ("exif_lon", "float"), ("error_km", "float"), ("exif_problem", "str"), ("message", "str"),
    ("hint", "str"), ("hint_weight", "float"), ("constraint", "str"),  # issue 25: the hint and area used
    # With a trip (core/answers/trip.py): the photo's place in time order, its capture time, and the joint answer
    # beside its own (best place, probability, 90 % region), with why it was answered alone or how it was ordered.
    ("trip_order", "int"), ("taken_at", "str"), ("trip_lat", "float"), ("trip_lon", "float"),
    ("trip_probability", "float"), ("trip_region90_km2", "float"), ("trip_note", "str"),
    ("sha256", "str"), ("saliency", "str"),
]
# Confidence regions (core/answers/regions.py): one multipolygon per level and input.
REGION_FIELDS = [
    ("source", "str"), ("level", "float"), ("area_km2", "float"), ("parts", "int"), ("mass", "float"),
    ("summary", "str"),
]
# A trip's track (core/answers/trip.py): one line through the photos' joint best places, in time order.
TRIP_FIELDS = [
    ("photos", "int"), ("start", "str"), ("end", "str"), ("length_km", "float"), ("speed_kmh", "float"),
    ("slack_km", "float"), ("note", "str"),
]
TRIP_LAYER = "geoclip_trip"  # the track's layer name in a GeoPackage the CLI writes, and in QGIS
TABLES = {"ranks": PREDICTION_FIELDS, "places": PLACE_FIELDS, "summary": SUMMARY_FIELDS}
# How many columns each table had in the releases before this one. New columns are only ever appended, so a CSV with
# the first n columns of a table, for one of these n, was written by an earlier GeoCLIP and is still ours to replace
# (the summary had 19 columns before issue 25 added the hint, area, trip, SHA-256 and saliency ones).
EARLIER_WIDTHS = {"summary": (19,)}
FAILURE_FIELDS = [("source", "str"), ("code", "str"), ("message", "str")]
