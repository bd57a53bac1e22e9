from core.db import jsonb_value


def test_jsonb_value_decodes_text_and_passes_decoded_values_through():
    assert jsonb_value('{"discount_pct": 5}') == {"discount_pct": 5}
    assert jsonb_value({"discount_pct": 5}) == {"discount_pct": 5}
    assert jsonb_value(None) is None
