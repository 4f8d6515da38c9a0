"""Evaluating ``q`` on entity documents: Smart Data Model examples and the ETSI suite's cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity
from broker.ngsild.query.qeval import evaluate_q
from broker.ngsild.query.qlang import expand_values, parse_q
from broker.ngsild.terms import TermTable, build_term_table

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
MODELS = Path("/work/shared/datamodels")
CORE_TERMS = build_term_table(None, CORE, builtin_documents())


def smart_data_model(model: str, extra: dict[str, Any]) -> tuple[TermTable, dict[str, Any]]:
    """The model's normalized example plus ``extra`` attributes, as a store keeps it."""
    body = json.loads((MODELS / model / "example-normalized.jsonld").read_text())
    context = [url for url in body.pop("@context") if "smart-data-models" in url]
    documents = dict(builtin_documents())
    documents[context[0]] = json.loads((MODELS / model / "context.jsonld").read_text())
    terms = build_term_table(context, CORE, documents)
    doc = parse_entity(body | extra, terms)
    doc |= {"createdAt": "2024-05-01T10:00:00.000Z", "modifiedAt": "2024-05-02T08:30:00.000Z"}
    return terms, doc


AQ_TERMS, AIR_QUALITY = smart_data_model(
    "AirQualityObserved",
    {
        "no2": {
            "type": "Property",
            "value": 69,
            "unitCode": "GQ",
            "observedAt": "2016-03-15T11:00:00Z",
            "qualityFlag": {"type": "Property", "value": "validated"},
        },
        "temperature": [
            {"type": "Property", "value": 12.2},
            {"type": "Property", "value": 14.8, "datasetId": "urn:ngsi-ld:Dataset:rooftop"},
        ],
        "stationName": {"type": "LanguageProperty", "languageMap": {"es": "Plaza de España"}},
        "pollutants": {"type": "ListProperty", "valueList": ["no2", "so2", "co"]},
        "rawData": {"type": "JsonProperty", "json": {"sensor": {"pm10": 12, "ok": True}}},
        "lastCalibration": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2016-01-10T09:00:00Z"},
        },
        "refDevice": {
            "type": "Relationship",
            "object": ["urn:ngsi-ld:Device:a", "urn:ngsi-ld:Device:b"],
        },
    },
)

AIR_QUALITY_CASES = [
    # numbers, units, metadata
    ("no2>50", True),
    ("no2>=69;no2<=69", True),
    ("no2==69.0", True),
    ('no2=="69"', False),
    ("no2!=69", False),
    ('no2.unitCode=="GQ"', True),
    ("no2.observedAt>=2016-03-15T10:00:00Z", True),
    ("no2.observedAt==2016-03-15T11:00:00.000Z", True),
    ("no2.observedAt<2016-03-15", False),
    ("no2.qualityFlag", True),
    ('no2.qualityFlag=="validated"', True),
    ("co.observedAt", False),
    ("co.qualityFlag", False),
    ("airQualityIndex==60..70", True),
    ("airQualityIndex!=60..70", False),
    ("airQualityIndex==1,65,100", True),
    ("relativeHumidity<1;relativeHumidity>0.5", True),
    # several instances: any of them may match
    ("temperature>14", True),
    ("temperature<13", True),
    ("temperature>20", False),
    ('temperature.datasetId=="urn:ngsi-ld:Dataset:rooftop"', True),
    ("temperature!=12.2", True),
    # strings and patterns
    ('airQualityLevel=="moderate"', True),
    ('airQualityLevel=="MODERATE"', False),
    ("airQualityLevel~=(?i)^MOD", True),
    ('airQualityLevel!~="good|excellent"', True),
    ('no2~="6"', False),
    ('no2!~="6"', False),
    ("source==http://datos.madrid.es", True),
    ('airQualityLevel>"low"', True),
    # dates kept as text, and as JSON-LD value objects
    ("dateObserved>=2016-03-15T11:00:00Z", True),
    ("dateObserved>2016-03-15T11:00:00Z", False),
    ("dateObserved==2016-03-15", False),
    ("dateObserved>2016-03-15", True),
    ("dateObserved==2016-03-01T00:00:00Z..2016-03-31T00:00:00Z", True),
    ("lastCalibration<2016-02-01T00:00:00Z", True),
    ("lastCalibration>2016-02-01T00:00:00Z", False),
    # compound values, JSON and GeoJSON
    ('address[addressLocality]=="Madrid"', True),
    ('address[addressLocality]!="Madrid"', False),
    ('address[postalCode]!="28001"', False),
    ("address[postalCode]", False),
    ("address[*]==ES", True),
    ('address!="Madrid"', True),
    ("rawData[sensor.pm10]>10", True),
    ("rawData[sensor][ok]==true", True),
    ('location[type]=="Point"', True),
    ("location[coordinates][1]>40", True),
    ("location[coordinates]<-3", True),
    # languages, lists, relationships
    ('stationName=="Plaza de España"', True),
    ('stationName[es]=="Plaza de España"', True),
    ('stationName[en]=="Plaza de España"', False),
    ('pollutants=="so2"', True),
    ('pollutants!="so2"', False),
    ('pollutants=="o3","co"', True),
    ("refPointOfInterest==urn:ngsi-ld:PointOfInterest:28079004-Pza.deEspanya", True),
    ("refDevice==urn:ngsi-ld:Device:b", True),
    ("refDevice!=urn:ngsi-ld:Device:b", False),
    ('refDevice>"urn:a"', False),
    ('refDevice~="Device"', False),
    ("refDevice[x]", False),
    # entity members, existence, logic
    ("createdAt<2024-05-02T00:00:00Z", True),
    ("modifiedAt<2024-05-02T00:00:00Z", False),
    ("!o3", True),
    ("!no2", False),
    ("o3!=1", False),
    ("o3>1|no2>1", True),
    ("o3>1;no2>1", False),
    ("(o3|co);(so2>100|no2<100)", True),
]


@pytest.mark.parametrize(("text", "expected"), AIR_QUALITY_CASES)
def test_air_quality_observation(text: str, expected: bool) -> None:
    assert evaluate_q(parse_q(text, AQ_TERMS.expand), AIR_QUALITY) is expected


PARKING_TERMS, PARKING_SPOT = smart_data_model("ParkingSpot", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('status=="free";status.observedAt>2018-09-21T11:59:59Z', True),
        ('status.parkingPermit=="yes"', True),
        ('status.parkingPermit!="yes"', False),
        ('category=="onStreet"', True),
        ('category=="offStreet"', False),
        ("refParkingSite==urn:ngsi-ld:ParkingSite:santander:daoiz_velarde_1_5", True),
        ('name~="^A-\\d+$"', True),
    ],
)
def test_parking_spot(text: str, expected: bool) -> None:
    assert evaluate_q(parse_q(text, PARKING_TERMS.expand), PARKING_SPOT) is expected


def test_expanded_values_match_stored_vocab_iris() -> None:
    doc = entity("shop", category={"type": "VocabProperty", "vocab": "commercial"})
    tree = parse_q("category==commercial", CORE_TERMS.expand)
    assert not evaluate_q(tree, doc)
    category = CORE_TERMS.expand("category")
    assert evaluate_q(expand_values(tree, {category}, CORE_TERMS.expand), doc)


# The ETSI conformance suite's q cases (QueryEntities 019_07/09/28/29, temporal 5744_01/02),
# each on the entities its test case creates; temporal ones on their in-window instances.


def entity(short_id: str, /, **attrs: Any) -> dict[str, Any]:
    return parse_entity({"id": f"urn:ngsi-ld:T:{short_id}", "type": "T", **attrs}, CORE_TERMS)


def prop(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def rel(target: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def language(**texts: str) -> dict[str, Any]:
    return {"type": "LanguageProperty", "languageMap": texts}


BUILDINGS = [
    entity("eiffel", name=prop("Eiffel Tower"), airQualityLevel=prop(4), almostFull=prop(False)),
    entity("pisa", name=prop("Pisa Tower"), airQualityLevel=prop(6), almostFull=prop(True)),
    entity(
        "pisa3",
        name=prop("Pisa Tower"),
        airQualityLevel=prop(7),
        almostFull=prop(False),
        locatedIn=rel("urn:ngsi-ld:City:Pisa"),
    ),
]
FEATURES = [
    entity(
        "features",
        address=prop({"city": "Berlin", "street": "Ulrich Strasse"}),
        color=language(fr="rouge", en="red", de="rot"),
        managedBy=rel("urn:ngsi-ld:T:target"),
    ),
    entity("target", name=prop("Pisa Tower")),
]
VEHICLES = [
    entity("fast", speed=prop(30), heading=prop(45), route=prop("550")),
    entity("slow", speed=prop(10), heading=prop(170)),
    entity("shapes", name=prop("m"), ref=rel("urn:dest:qp1"), tags=prop(["a", "b"])),
    entity("nowin"),
    entity("multi", speed=[prop(5), prop(60, datasetId="urn:ngsi-ld:Dataset:qp1")]),
]
TYPED = [
    entity(
        "typed",
        speed=prop(30),
        route=prop("550"),
        active=prop(True),
        departure=prop("2026-03-01T06:00:00Z"),
    ),
    entity("typed2", active=prop(False), departure=prop("2026-02-01T00:00:00Z")),
    entity("langv", label=language(en="red", fr="rouge")),
    entity("langv2", label=language(en="black", fr="rouge")),
    entity("relv", ref=rel("urn:dest:qpA")),
    entity("arrv", tags=prop(["a", "b"])),
    entity("fastest", speed=prop(99)),
]
ETSI_CASES = [
    (BUILDINGS[:2], "airQualityLevel==6", "pisa"),
    (BUILDINGS, 'name=="Eiffel Tower"', "eiffel"),
    (BUILDINGS, 'name=="Pisa Tower";almostFull==false', "pisa3"),
    (BUILDINGS, 'name=="Pisa Tower"|almostFull==false', "eiffel pisa pisa3"),
    (BUILDINGS, '(name=="Pisa Tower"|name=="Eiffel Tower");almostFull==false', "eiffel pisa3"),
    (BUILDINGS, "airQualityLevel==4", "eiffel"),
    (BUILDINGS, "airQualityLevel>=4;airQualityLevel<7", "eiffel pisa"),
    (BUILDINGS, "locatedIn==urn:ngsi-ld:City:Pisa", "pisa3"),
    (BUILDINGS, "locatedIn==urn:ngsi-ld:City:Paris", ""),
    (BUILDINGS, "locatedIn==urn:ngsi-ld:City:Pisa|locatedIn==urn:ngsi-ld:City:Paris", "pisa3"),
    (BUILDINGS[:2], "airQualityLevel==4..5", "eiffel"),
    (BUILDINGS[:2], "airQualityLevel!=4..5", "pisa"),
    (BUILDINGS[:2], 'name=="Eiffel Tower","Pisa Tower"', "eiffel pisa"),
    (BUILDINGS[:2], 'name!="Eiffel Tower","Big Ben"', "pisa"),
    (BUILDINGS[:2], 'name!~="^Eiffel"', "pisa"),
    (FEATURES, 'address[city]=="Berlin"', "features"),
    (FEATURES, 'address[postcode]=="Berlin"', ""),
    (FEATURES, "address[city]", "features"),
    (FEATURES, 'color[en]=="red"', "features"),
    (FEATURES, 'color[en]=="rouge"', ""),
    (FEATURES, 'color[*]=="rouge"', "features"),
    (FEATURES, 'color[*]!="red"', ""),
    (FEATURES, 'managedBy>"urn:a"', ""),
    (VEHICLES, "speed>25", "fast multi"),
    (VEHICLES, "speed>=5;heading<90", "fast"),
    (VEHICLES, "speed>25|heading>100", "fast slow multi"),
    (VEHICLES, 'speed>25|name~="^m"', "fast shapes multi"),
    (VEHICLES, "speed!=10", "fast multi"),
    (VEHICLES, "!heading;speed>25", "multi"),
    (VEHICLES, "speed==10..40", "fast slow"),
    (VEHICLES, 'route=="550","551"', "fast"),
    (VEHICLES, 'ref=="urn:dest:qp1"', "shapes"),
    (VEHICLES, 'tags=="a"', "shapes"),
    (VEHICLES, "speed>50", "multi"),
    (TYPED, 'speed=="30"', ""),
    (TYPED, "speed==30", "typed"),
    (TYPED, 'speed!="thirty"', "typed fastest"),
    (TYPED, "route>100", ""),
    (TYPED, 'route>"200"', "typed"),
    (TYPED, 'ref>"urn:a"', ""),
    (TYPED, 'ref=="urn:dest:qpA"', "relv"),
    (TYPED, 'speed~="3.*"', ""),
    (TYPED, 'route~="5.*"', "typed"),
    (TYPED, 'route!~="9.*"', "typed"),
    (TYPED, 'route!~="5.*"', ""),
    (TYPED, 'label[en]=="red"', "langv"),
    (TYPED, 'label[fr]=="red"', ""),
    (TYPED, 'label[*]=="rouge"', "langv langv2"),
    (TYPED, 'tags=="b","z"', "arrv"),
    (TYPED, 'tags=="x","z"', ""),
    (TYPED, "speed!=10..40", "fastest"),
    (TYPED, 'departure>"2026-02-15T00:00:00Z"', "typed"),
    (TYPED, "active==true", "typed"),
    (TYPED, "active==false", "typed2"),
    (TYPED, '(speed>25|route=="551");active==true', "typed"),
]


@pytest.mark.parametrize(("pool", "text", "expected"), ETSI_CASES, ids=[c[1] for c in ETSI_CASES])
def test_etsi_suite_cases(pool: list[dict[str, Any]], text: str, expected: str) -> None:
    tree = parse_q(text, CORE_TERMS.expand)
    found = {doc["id"].rsplit(":", 1)[-1] for doc in pool if evaluate_q(tree, doc)}
    assert found == set(expected.split())


def test_linked_entity_paths_follow_relationships_with_type_hints() -> None:
    pisa = entity("pisa", name=prop("Pisa Tower"))
    feature = entity("feature", managedBy=rel(pisa["id"]))
    linked = {pisa["id"]: pisa}

    def holds(text: str, with_linked: bool = True) -> bool:
        return evaluate_q(
            parse_q(text, CORE_TERMS.expand), feature, linked if with_linked else None
        )

    assert holds('managedBy{name}=="Pisa Tower"')
    assert holds('managedBy{T:name}=="Pisa Tower"')  # the target is a T
    assert not holds('managedBy{Vehicle:name}=="Pisa Tower"')
    assert not holds('managedBy{name}=="Eiffel Tower"')
    assert not holds('managedBy{name}=="Pisa Tower"', with_linked=False)
    assert holds("!managedBy{height}")
