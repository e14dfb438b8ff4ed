"""Constraints by name and by distance (core/answers/boundaries.py through AreaOfInterest.parse): countries and
regions by name or ISO code from the bundled Natural Earth polygons, circles by great-circle distance, unions, and
the engine keeping only the gallery points inside, with the share of mass outside reported."""

from __future__ import annotations

import numpy as np
import pytest

from geoclip_qgis.core.answers.aoi import AreaOfInterest, area_spec
from geoclip_qgis.core.answers.options import AnswerOptions
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.shared.geodesy import haversine_km

# Points whose country is not in doubt (capitals and big cities, far from borders).
SANTIAGO, BUENOS_AIRES, LIMA, PRAGUE, MUNICH, BERLIN = (-33.45, -70.66), (-34.6, -58.38), (-12.05, -77.04), \
    (50.08, 14.43), (48.14, 11.58), (52.52, 13.40)


@pytest.mark.parametrize("spec", ["Czechia", "czech republic", "CZECH REPUBLIC", "CZ", "cze", " Czechia "])
def test_a_country_by_any_of_its_names(spec):
    aoi = AreaOfInterest.parse(spec)
    assert aoi.name == "Czechia"
    assert aoi.points_mask([PRAGUE, MUNICH, BERLIN]).tolist() == [True, False, False]


@pytest.mark.parametrize("spec, name", [("DE-BY", "Bayern, Germany"), ("bayern", "Bayern, Germany"),
                                        ("Sao Paulo", "São Paulo, Brazil"), ("Georgia, US", "Georgia, United States"),
                                        ("US-GA", "Georgia, United States"), ("Georgia", "Georgia"),
                                        ("Côte d'Ivoire", "Côte d'Ivoire"), ("UK", "United Kingdom")])
def test_regions_and_ambiguous_names(spec, name):
    assert AreaOfInterest.parse(spec).name == name


def test_bavaria_keeps_munich_only():
    assert AreaOfInterest.parse("DE-BY").points_mask([MUNICH, BERLIN, PRAGUE]).tolist() == [True, False, False]


def test_unknown_names_list_close_matches():
    with pytest.raises(InputError, match="Chilie") as err:
        AreaOfInterest.parse("Chilie")
    assert err.value.hint.startswith("did you mean Chile")
    with pytest.raises(InputError, match="several regions") as err:
        AreaOfInterest.parse("Cordoba")
    assert "Córdoba, Argentina" in str(err.value) and "Córdoba, Spain" in str(err.value)
    with pytest.raises(InputError, match="no country or region"):
        AreaOfInterest.parse("Chile; Atlantis")


@pytest.mark.parametrize("spec", ["Chile; Argentina", ["Chile", "Argentina"], "chl;ARG",
                                  ["CL", "within 100 km of -34.6, -58.38"]])
def test_a_union_of_countries(spec):
    aoi = AreaOfInterest.parse(spec)
    assert aoi.points_mask([SANTIAGO, BUENOS_AIRES, LIMA]).tolist() == [True, True, False]
    assert aoi.name.startswith("Chile")


def test_a_circle_keeps_the_points_within_its_great_circle_distance():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(40, 52, 4000), rng.uniform(-5, 15, 4000)])
    aoi = AreaOfInterest.parse("within 300 km of 45.76, 4.84")
    dist = np.array([haversine_km(a, b, 45.76, 4.84) for a, b in pts])
    assert (aoi.points_mask(pts) == (dist <= 300)).all()
    assert aoi.name == "within 300 km of 45.76, 4.84"
    assert AreaOfInterest.parse({"near": [45.76, 4.84], "radius_km": 300}).name == aoi.name
    pacific = AreaOfInterest.parse("within 500 km of 0, 179")  # across the antimeridian
    assert pacific.points_mask([[0, -179], [0, 175], [0, 170]]).tolist() == [True, True, False]
    assert pacific.bounds[0] >= -180 and pacific.bounds[2] <= 180
    polar = AreaOfInterest.parse("within 1000 km of 85, 0")
    assert polar.points_mask([[89, 120], [80, 180]]).tolist() == [True, False]
    for bad in ("within -5 km of 0, 0", "within 5 km of 95, 0", {"near": [1], "radius_km": 5}):
        with pytest.raises(InputError):
            AreaOfInterest.parse(bad)


def test_area_spec_joins_the_fields_of_a_front_door():
    assert area_spec() is None and area_spec("Chile") == "Chile"
    assert area_spec("Chile", "45.76, 4.84", 50) == ["Chile", "within 50 km of 45.76, 4.84"]
    assert AreaOfInterest.parse(area_spec(None, "45.76,4.84", 50)).name == "within 50 km of 45.76, 4.84"
    with pytest.raises(InputError, match="centre and a radius"):
        area_spec("Chile", "45.76,4.84", None)
    with pytest.raises(InputError, match="centre"):
        area_spec(None, "north", 5)


def test_the_engine_keeps_only_gallery_points_inside(engine):
    coords = engine.gallery().coords
    feats = engine.embed_text(["a harbour at dusk"])
    for spec in ("Chile; Argentina", "within 2000 km of 48.85, 2.35"):
        aoi = AreaOfInterest.parse(spec)
        inside = aoi.points_mask(coords)
        assert 0 < inside.sum() < len(coords)
        opts = AnswerOptions.make(aoi=aoi)
        preds, places, _, outside = engine.rank(feats, 50, opts)[0]
        assert all(inside[p.gallery_index] for p in preds)
        assert all(aoi.points_mask([[pl["best_lat"], pl["best_lon"]]])[0] for pl in places)
        assert abs(sum(p.probability for p in engine.rank(feats, int(inside.sum()), opts)[0][0]) - 1) < 1e-4
        full = engine.gallery().logits(feats, engine.scale).double().softmax(-1)[0].numpy()
        assert outside == pytest.approx(1 - full[inside].sum(), abs=1e-6)
        res = next(engine.iter_predict_text(["a harbour at dusk"], 5, options=opts))
        assert res.constraint == aoi.name and res.aoi_outside == pytest.approx(outside)


def test_every_front_door_joins_its_area_fields_by_one_rule():
    """shared/protocol.area_request: the dock's area (a bbox or a polygon), 'Limit to' and 'Near' + radius, one
    request value the schema accepts and the engine reads as their union."""
    from geoclip_qgis.shared import protocol

    bbox = [-10.0, 35.0, 30.0, 60.0]
    assert protocol.area_request() is None and protocol.area_request(bbox) == bbox
    joined = protocol.area_request(bbox, "Chile", "-34.6, -58.38", 100)
    assert joined == [bbox, "Chile", "within 100 km of -34.6, -58.38"]
    assert protocol.validate("geolocate_text", {"queries": ["x"], "aoi": joined})["aoi"] == joined
    aoi = AreaOfInterest.parse(joined)
    assert aoi.points_mask([[48.85, 2.35], SANTIAGO, BUENOS_AIRES, LIMA]).tolist() == [True, True, True, False]
    square = {"type": "Polygon", "coordinates": [[[0, 40], [10, 40], [10, 50], [0, 50], [0, 40]]]}
    both = protocol.area_request(square, "CL")
    assert protocol.validate("geolocate_text", {"queries": ["x"], "aoi": both})["aoi"] == both
    assert AreaOfInterest.parse(both).points_mask([[45, 5], SANTIAGO, LIMA]).tolist() == [True, True, False]
    with pytest.raises(ValueError):
        protocol.area_request(None, None, "1, 2", 0)
