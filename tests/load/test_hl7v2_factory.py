from datetime import date
from pathlib import Path

import hl7
import pytest

from harness import idcard
from harness.hl7v2.meta import extract
from harness.load.hl7v2_factory import Hl7v2Factory, Template, TemplateError
from harness.load.ids import ControlIds

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"


def template(name: str, **kw) -> Template:
    return Template((FIXTURES / name).read_bytes(), source=name, **kw)


def test_a_fixture_becomes_a_template_with_the_identifying_fields_as_slots():
    t = template("adt_a04_gb18030.hl7")
    assert t.name == "ADT^A04" and t.codec == "gb18030"
    assert {"now", "control_id", "mrn", "idcard", "family", "given", "birth", "sex"} <= t.slots
    orders = template("oru_r01_glucose.hl7")
    assert {"placer", "filler"} <= orders.slots


def test_every_message_has_a_new_control_id_and_a_valid_matching_resident_id():
    factory = Hl7v2Factory({"ADT^A04": (template("adt_a04_gb18030.hl7"), 1.0)}, ControlIds("T3ST", 7), seed=1)
    seen = set()
    for _ in range(300):
        message = factory.make()
        assert message.control_id not in seen and len(message.control_id) <= 20
        seen.add(message.control_id)
        text = message.payload.decode("gb18030")  # the sample's charset, kept
        parsed = hl7.parse(text)  # python-hl7, an independent parser
        assert str(parsed.segment("MSH")[10]) == message.control_id
        pid = parsed.segment("PID")
        number = str(pid[3][1][0])
        assert idcard.problem(number) is None
        assert str(pid[7]) == number[6:14]
        assert str(pid[8]) == ("M" if idcard.gender(number) == "1" else "F")
        assert (
            "洱海示范医院" in text and "城乡居民基本医疗保险" in text
        )  # the rest stays as the sample has it
        meta = extract(message.payload)
        assert meta.charset == "gb18030" and meta.message_code == "ADT^A04"
        assert meta.control_id == message.control_id
    assert all(c.startswith("LT3ST07") for c in seen)


def test_the_mix_follows_the_weights_or_a_captured_minute():
    factory = Hl7v2Factory(
        {
            "ADT^A04": (template("adt_a04_gb18030.hl7"), 3.0),
            "ORU^R01": (template("oru_r01_glucose.hl7"), 1.0),
        },
        ControlIds("MIX1"),
        seed=3,
    )
    names = [factory.pick() for _ in range(4000)]
    assert 0.7 < names.count("ADT^A04") / len(names) < 0.8
    assert {factory.pick({"ORU^R01": 5, "SIU^S12": 100}) for _ in range(50)} == {"ORU^R01"}


def test_ack_mode_can_be_overridden_to_ask_for_enhanced_acknowledgements():
    t = template("adt_a08_update_lf.hl7", ack="enhanced")
    assert t.mode.enhanced and (t.mode.accept, t.mode.application) == ("AL", "AL")
    message = Hl7v2Factory({t.name: (t, 1)}, ControlIds("ENH1")).make()
    meta = extract(message.payload)
    assert (meta.accept_ack_type, meta.app_ack_type) == ("AL", "AL")
    assert template("adt_a01_admit.hl7", ack="NE/NE").mode.expects_nothing
    with pytest.raises(TemplateError, match="MSH-15/MSH-16"):
        template("adt_a01_admit.hl7", ack="ALWAYS")


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"PID|1||123\r", ["no MSH"]),
        (b"MSH|^~\\&|A|B|C|D|20260101||^|1|P|2.5\r", ["MSH-9"]),
        (b"MSH|^~\\&|A|B\r", ["needs MSH-9"]),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||\xff\xfe\r", ["does not decode as utf-8"]),
    ],
)
def test_samples_that_cannot_be_templates_say_why(payload, words):
    with pytest.raises(TemplateError) as err:
        Template(payload, source="sample.hl7")
    assert "sample.hl7" in str(err.value)
    for word in words:
        assert word in str(err.value)


def test_people_are_born_in_the_past_and_from_yunnan():
    factory = Hl7v2Factory({"ADT^A04": (template("adt_a04_gb18030.hl7"), 1.0)}, ControlIds("YN01"), seed=9)
    for _ in range(200):
        person = factory.people.next()
        assert person.idcard.startswith("53") and person.birth < date.today()
