//! Number, unit and duration formatting shared by explanations, triage reports, exports
//! and alerts, plus the number extraction that checks a rephrasing against the original.
//!
//! Every figure WatchDog prints goes through these helpers, so the same value reads the
//! same everywhere (`2.13%`, `190 ms`, `1200 req/s`), and so [`numbers_in`] finds the
//! same numbers in a text and in its rephrasing.

/// How a metric's values are written, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// A fraction in `[0, 1]`, written as a percentage (`error_rate`, `*_ratio`).
    Fraction,
    /// Milliseconds (`*_ms`).
    Millis,
    /// Seconds (`*_secs`, `*_seconds`).
    Seconds,
    /// Requests per second (`request_rate`, `throughput`).
    RequestsPerSec,
    /// Some other per-second rate (`*_rate`).
    PerSec,
    /// A whole count (`requests`, `errors`, `*_count`, `*_total`).
    Count,
    /// Anything else: the bare number.
    Plain,
}

fn unit_of(metric: &str) -> Unit {
    let m = metric.to_ascii_lowercase();
    if m == "error_rate"
        || m.ends_with("_error_rate")
        || m.ends_with("_ratio")
        || m.ends_with("_fraction")
    {
        Unit::Fraction
    } else if m.ends_with("_ms") {
        Unit::Millis
    } else if m.ends_with("_secs") || m.ends_with("_seconds") {
        Unit::Seconds
    } else if m == "request_rate" || m == "throughput" || m == "rps" {
        Unit::RequestsPerSec
    } else if m.ends_with("_rate") {
        Unit::PerSec
    } else if m == "requests" || m == "errors" || m.ends_with("_count") || m.ends_with("_total") {
        Unit::Count
    } else {
        Unit::Plain
    }
}

/// Whether a metric is a fraction shown as a percentage (`error_rate`, `*_ratio`).
pub fn is_fraction(metric: &str) -> bool {
    unit_of(metric) == Unit::Fraction
}

/// A number with about three significant digits, no exponent, no trailing zeros:
/// `1200`, `190`, `12.4`, `2.13`, `0.0513`.
pub fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "n/a".into()
        } else if x > 0.0 {
            "∞".into()
        } else {
            "-∞".into()
        };
    }
    let a = x.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // Leading zeros after the point, plus three significant digits, at most 6 places.
        let zeros = (-a.log10()).floor() as usize;
        (zeros + 3).min(6)
    };
    let mut s = format!("{x:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// A metric value in its unit: `error_rate` 0.0213 → `2.13%`, `p95_latency_ms` 190 →
/// `190 ms`, `request_rate` 1200 → `1200 req/s`, `errors` 12 → `12`.
pub fn format_value(metric: &str, value: f64) -> String {
    match unit_of(metric) {
        Unit::Fraction => format!("{}%", format_number(value * 100.0)),
        Unit::Millis => format!("{} ms", format_number(value)),
        Unit::Seconds => format!("{} s", format_number(value)),
        Unit::RequestsPerSec => format!("{} req/s", format_number(value)),
        Unit::PerSec => format!("{}/s", format_number(value)),
        Unit::Count => format_count(value),
        Unit::Plain => format_number(value),
    }
}

/// A whole count: `1234`.
pub fn format_count(value: f64) -> String {
    if value.is_finite() {
        format!("{:.0}", value)
    } else {
        format_number(value)
    }
}

/// A signed change in the metric's unit; fractions change by percentage points:
/// `+5.7 pp`, `+230 ms`, `-420 req/s`.
pub fn format_delta(metric: &str, delta: f64) -> String {
    let sign = if delta < 0.0 { "-" } else { "+" };
    let body = match unit_of(metric) {
        Unit::Fraction => format!("{} pp", format_number(delta.abs() * 100.0)),
        _ => format_value(metric, delta.abs()),
    };
    format!("{sign}{body}")
}

/// How much `after` differs from `before`, as a reader would say it: `12.4x` for a rise
/// to at least double, `+35%` or `-42%` otherwise, `from zero` when `before` is 0.
pub fn format_change(before: f64, after: f64) -> String {
    if before == 0.0 || !before.is_finite() || !after.is_finite() {
        return if after == before {
            "unchanged".into()
        } else {
            "from zero".into()
        };
    }
    let ratio = after / before;
    if before > 0.0 && ratio >= 2.0 {
        format!("{}x", format_number(ratio))
    } else {
        format_percent_change(ratio - 1.0)
    }
}

/// A relative change as a signed percentage: 0.35 → `+35%`.
pub fn format_percent_change(relative: f64) -> String {
    let sign = if relative < 0.0 { "-" } else { "+" };
    format!("{sign}{}%", format_number(relative.abs() * 100.0))
}

/// A probability as a percentage: 0.01 → `1%`.
pub fn format_percent(p: f64) -> String {
    format!("{}%", format_number(p * 100.0))
}

/// A metric's name as prose: `p95_latency_ms` → `p95 latency`, `error_rate` →
/// `error rate`.
pub fn metric_label(metric: &str) -> String {
    let base = metric
        .strip_suffix("_ms")
        .or_else(|| metric.strip_suffix("_secs"))
        .or_else(|| metric.strip_suffix("_seconds"))
        .unwrap_or(metric);
    base.replace('_', " ")
}

/// A span of seconds in whole units: `45 s`, `4 min`, `4 min 10 s`, `1 h 5 min`.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "an unknown time".into();
    }
    let total = secs.abs().round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// Where an instant lies against the deploy: `2 min after the deploy`,
/// `30 s before the deploy`, `at the deploy`.
pub fn relative_to_deploy(secs_after_deploy: f64) -> String {
    if secs_after_deploy.abs() < 0.5 {
        "at the deploy".into()
    } else if secs_after_deploy > 0.0 {
        format!("{} after the deploy", format_duration(secs_after_deploy))
    } else {
        format!("{} before the deploy", format_duration(secs_after_deploy))
    }
}

/// The magnitudes of all numbers written in `text`, in order of appearance.
///
/// A number is a run of ASCII digits with an optional fractional part (`2.13`) and
/// optional thousands separators (`1,200` is 1200). Digits inside words count too
/// (`p95` gives 95, `v1.4.2` gives 1.4 and 2), so an identifier that is altered is
/// noticed. Signs are left out on purpose: "fell by 42" is a fair rephrasing of `-42`.
pub fn numbers_in(text: &str) -> Vec<f64> {
    let b = text.as_bytes();
    let digit = |i: usize| i < b.len() && b[i].is_ascii_digit();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while digit(i) {
            i += 1;
        }
        let mut literal: String = text[start..i].to_string();
        // Thousands groups: a comma followed by exactly three digits, only after a first
        // group of at most three digits.
        if i - start <= 3 {
            while i < b.len()
                && b[i] == b','
                && digit(i + 1)
                && digit(i + 2)
                && digit(i + 3)
                && !digit(i + 4)
            {
                literal.push_str(&text[i + 1..i + 4]);
                i += 4;
            }
        }
        if i + 1 < b.len() && b[i] == b'.' && digit(i + 1) {
            let frac_start = i;
            i += 1;
            while digit(i) {
                i += 1;
            }
            literal.push_str(&text[frac_start..i]);
        }
        if let Ok(v) = literal.parse::<f64>() {
            out.push(v);
        }
    }
    out
}

/// Whether `rephrased` keeps every number of `original` and adds none (as sets of values:
/// a number may be repeated or merged, but never changed, dropped or invented).
pub fn numbers_consistent(original: &str, rephrased: &str) -> bool {
    let a = numbers_in(original);
    let b = numbers_in(rephrased);
    let same = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
    a.iter().all(|x| b.iter().any(|y| same(*x, *y)))
        && b.iter().all(|y| a.iter().any(|x| same(*x, *y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_units() {
        assert_eq!(format_value("error_rate", 0.0213), "2.13%");
        assert_eq!(format_value("error_rate", 0.005), "0.5%");
        assert_eq!(format_value("error_rate", 0.12345), "12.3%");
        assert_eq!(format_value("p95_latency_ms", 190.0), "190 ms");
        assert_eq!(format_value("p99_latency_ms", 12.26), "12.3 ms");
        assert_eq!(format_value("request_rate", 1200.0), "1200 req/s");
        assert_eq!(format_value("errors", 12.0), "12");
        assert_eq!(format_value("queue_depth", 0.000123), "0.000123");
        assert_eq!(format_delta("error_rate", 0.057), "+5.7 pp");
        assert_eq!(format_delta("request_rate", -420.0), "-420 req/s");
    }

    #[test]
    fn changes_read_as_folds_or_percentages() {
        assert_eq!(format_change(0.005, 0.062), "12.4x");
        assert_eq!(format_change(190.0, 256.5), "+35%");
        assert_eq!(format_change(1200.0, 696.0), "-42%");
        assert_eq!(format_change(0.0, 3.0), "from zero");
    }

    #[test]
    fn durations_use_whole_units() {
        assert_eq!(format_duration(45.0), "45 s");
        assert_eq!(format_duration(240.0), "4 min");
        assert_eq!(format_duration(250.0), "4 min 10 s");
        assert_eq!(format_duration(3900.0), "1 h 5 min");
        assert_eq!(relative_to_deploy(-30.0), "30 s before the deploy");
    }

    #[test]
    fn numbers_are_found_in_prose() {
        assert_eq!(
            numbers_in("rose from 0.5% to 6.2% (12.4x), 1,234 times; p95 at v1.4.2"),
            vec![0.5, 6.2, 12.4, 1234.0, 95.0, 1.4, 2.0]
        );
        assert_eq!(numbers_in("fell by -42 req/s."), vec![42.0]);
        assert_eq!(numbers_in("no digits"), Vec::<f64>::new());
        assert_eq!(numbers_in("1,2"), vec![1.0, 2.0]);
    }

    #[test]
    fn consistency_catches_changed_dropped_and_added_numbers() {
        let original = "Error rate rose from 0.5% to 6.2% (12.4x) 1 min after the deploy.";
        assert!(numbers_consistent(
            original,
            "One minute... no: 1 min after the deploy the error rate went 0.5% → 6.2%, 12.4x."
        ));
        assert!(!numbers_consistent(
            original,
            "Error rate rose from 0.5% to 6.3% (12.4x) 1 min after."
        ));
        assert!(!numbers_consistent(
            original,
            "Error rate rose 12.4x, 1 min after."
        ));
        assert!(!numbers_consistent(
            original,
            "Error rate rose from 0.5% to 6.2% (12.4x) 1 min after, affecting 300 users."
        ));
    }
}
