"""One way to write a metric for a person (agent/metric_text.py): the table's four decimals where they read well,
four significant digits where they would not, and never a figure that collapses to 0.0000."""

from __future__ import annotations

import pytest

from nightlab.agent.metric_text import fmt_change, fmt_metric, fmt_noise


@pytest.mark.parametrize(("value", "text"), [
    (0.6, "0.6000"), (0.61455, "0.6146"), (2.2397, "2.2397"), (0.0, "0.0000"), (-0.3, "-0.3000"),
    (0.0612, "0.06120"), (0.001234, "0.001234"), (1e-4, "0.0001000"), (1.234e-5, "1.234e-05"),
    (999.12345, "999.1235"), (1234.5, "1234.5"), (12345.67, "12346"), (1.5e6, "1.500e+06"),
    (float("nan"), "nan"), (float("-inf"), "-inf"), (None, "—"),
])
def test_a_metric_keeps_the_tables_decimals_and_at_least_four_significant_digits(value: float | None,
                                                                                  text: str) -> None:
    assert fmt_metric(value) == text


def test_a_change_and_a_noise_floor_keep_two_significant_digits_and_a_sign() -> None:
    assert [fmt_change(d) for d in (0.0123, -0.004, 3e-5, 0.0)] == ["+0.0123", "-0.0040", "+3.0e-05", "+0.0000"]
    assert [fmt_noise(n) for n in (0.0089, 0.00003, 2.5)] == ["0.0089", "3.0e-05", "2.5000"]
    assert fmt_change(None) == "" and fmt_metric(None, "-") == "-"
