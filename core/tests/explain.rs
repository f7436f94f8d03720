//! Explanations, severity, triage and exports on hand-built verdicts.

use watchdog_core::explain::{
    explain, numbers_consistent, numbers_in, severity, triage, Confidence, Severity,
};
use watchdog_core::export::{
    json, markdown, timeline, verdict_markdown, AuditDoc, IncidentDoc, NoteDoc,
};
use watchdog_core::{
    CountEvidence, DeployVerdict, Direction, InconclusiveCause, LogLevel, MetricEvidence,
    MetricStatus, SignatureChange, SignatureEvidence, Summary, TestKind, Timestamp, VerdictKind,
    WatchEnd, WatchWindow,
};

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

const DEPLOY: &str = "2026-03-30T19:30:00Z";

fn metric(
    name: &str,
    status: MetricStatus,
    before: f64,
    after: f64,
    sigmas: f64,
) -> MetricEvidence {
    MetricEvidence {
        metric: name.into(),
        direction: Direction::default_for(name),
        status,
        test: TestKind::Cusum,
        baseline: Summary {
            n: 60,
            median: before,
            mean: before,
            spread: (after - before).abs() / sigmas.max(1e-9),
        },
        observed: Summary {
            n: 20,
            median: after,
            mean: after,
            spread: 1.0,
        },
        effect_absolute: after - before,
        effect_relative: (before != 0.0).then(|| (after - before) / before),
        effect_sigmas: sigmas,
        min_effect: if name == "error_rate" {
            0.005
        } else {
            0.1 * before
        },
        change_started_at: (status == MetricStatus::Regressed).then(|| t("2026-03-30T19:31:00Z")),
        detected_at: (status == MetricStatus::Regressed).then(|| t("2026-03-30T19:33:00Z")),
        statistic: if status == MetricStatus::Regressed {
            48.2
        } else {
            1.3
        },
        threshold: 5.3,
        autocorrelation: 0.1,
        counts: None,
        note: None,
    }
}

fn signature(level: LogLevel, change: SignatureChange, count_after: u64) -> SignatureEvidence {
    SignatureEvidence {
        signature: "a1b2c3d4".into(),
        template: "Timeout connecting to <*> after <*> ms".into(),
        change,
        level,
        count_before: 0,
        count_after,
        rate_before_per_min: 0.0,
        rate_after_per_min: 41.0,
        first_seen: t("2026-03-30T19:30:45Z"),
        example: "Timeout connecting to db-1:5432 after 3000 ms".into(),
        score: 30.0,
        significant_at: None,
    }
}

fn verdict(
    kind: VerdictKind,
    evidence: Vec<MetricEvidence>,
    signatures: Vec<SignatureEvidence>,
) -> DeployVerdict {
    DeployVerdict {
        deploy_id: "v1.4.2".into(),
        service: "checkout".into(),
        environment: "production".into(),
        deployed_at: t(DEPLOY),
        verdict: kind,
        detected_at: (kind == VerdictKind::Regression).then(|| t("2026-03-30T19:33:00Z")),
        reason: "error_rate rose".into(),
        inconclusive_cause: None,
        needed: None,
        window: WatchWindow {
            baseline_from: Some(t("2026-03-30T18:30:00Z")),
            baseline_samples: 60,
            watched_until: t("2026-03-30T20:00:00Z"),
            watched_secs: 1800.0,
            samples_after: 30,
            ended_by: if kind == VerdictKind::Regression {
                WatchEnd::Detection
            } else {
                WatchEnd::Window
            },
        },
        evidence,
        signatures,
        warnings: vec![],
        false_alarm_rate: 0.01,
        canary: None,
    }
}

fn error_regression() -> DeployVerdict {
    verdict(
        VerdictKind::Regression,
        vec![
            metric("error_rate", MetricStatus::Regressed, 0.005, 0.062, 23.1),
            metric("p95_latency_ms", MetricStatus::Ok, 190.0, 192.0, 0.2),
            metric("request_rate", MetricStatus::Ok, 1200.0, 1190.0, 0.3),
        ],
        vec![signature(LogLevel::Error, SignatureChange::New, 1234)],
    )
}

#[test]
fn regression_explanation_names_metric_figures_timing_certainty_and_signature() {
    let v = error_regression();
    let e = explain(&v);
    assert_eq!(
        e.headline,
        "checkout v1.4.2 (production): regression, error rate 0.5% → 6.2% (12.4x)"
    );
    let s = &e.summary;
    for needle in [
        "error rate rose from 0.5% to 6.2% (12.4x)",
        "1 min after the deploy",
        "detected at 2026-03-30T19:33:00Z (3 min after the deploy)",
        "reached 48.2 against a threshold of 5.3",
        "false-alarm target of 1% per deploy",
        "\"Timeout connecting to <*> after <*> ms\", 1234 times",
    ] {
        assert!(s.contains(needle), "summary lacks {needle:?}: {s}");
    }
    let details = e.details.join("\n");
    assert!(
        details.contains("p95 latency: 190 ms before, 192 ms after (+2 ms), within the 19 ms"),
        "{details}"
    );
    assert!(
        details.contains("request rate: 1200 req/s before, 1190 req/s after (-10 req/s)"),
        "{details}"
    );
    assert!(
        details.contains("for example: \"Timeout connecting to db-1:5432 after 3000 ms\""),
        "{details}"
    );
    assert!(details.contains("45 s after the deploy"), "{details}");
    // Deterministic; a rephrasing that keeps every number (here: the numbers alone, in
    // reverse order) is consistent with the text, one that drops any of them is not.
    assert_eq!(explain(&v), e);
    let text = e.to_text();
    let nums: Vec<String> = numbers_in(&text).iter().map(|n| n.to_string()).collect();
    assert!(nums.len() >= 5, "{nums:?}");
    let reversed: Vec<String> = nums.iter().rev().cloned().collect();
    assert!(
        numbers_consistent(&text, &reversed.join(" ")),
        "{reversed:?}"
    );
    for skip in 0..nums.len() {
        let dropped: Vec<&str> = nums
            .iter()
            .filter(|n| **n != nums[skip])
            .map(|n| n.as_str())
            .collect();
        assert!(
            !numbers_consistent(&text, &dropped.join(" ")),
            "dropping {} went unnoticed",
            nums[skip]
        );
    }
}

#[test]
fn counts_are_explained_when_present() {
    let mut v = error_regression();
    v.evidence[0].counts = Some(CountEvidence {
        baseline_errors: 12.0,
        baseline_requests: 2400.0,
        observed_errors: 372.0,
        observed_requests: 6000.0,
        requests_needed: 800.0,
        overdispersion: 1.0,
    });
    let text = explain(&v).details.join("\n");
    assert!(
        text.contains("12 errors in 2400 requests before, 372 in 6000 after"),
        "{text}"
    );
}

#[test]
fn healthy_explanation_says_what_was_checked_and_the_smallest_change_that_counts() {
    let v = verdict(
        VerdictKind::Healthy,
        vec![
            metric("error_rate", MetricStatus::Ok, 0.005, 0.0048, 0.1),
            metric("p95_latency_ms", MetricStatus::Ok, 190.0, 192.0, 0.2),
        ],
        vec![],
    );
    let e = explain(&v);
    assert_eq!(
        e.headline,
        "checkout v1.4.2 (production): healthy, no material change in 2 watched metrics over 30 min"
    );
    assert!(
        e.summary
            .contains("Watched 30 min after the deploy (30 samples"),
        "{}",
        e.summary
    );
    assert!(
        e.summary.contains("against a baseline of 60 samples"),
        "{}",
        e.summary
    );
    assert!(
        e.summary.contains("The smallest changes that would have counted: +0.5 pp error rate and +19 ms p95 latency."),
        "{}",
        e.summary
    );
    assert_eq!(severity(&v), Severity::Low);
    let tr = triage(&v);
    assert_eq!(tr.confidence, Confidence::High);
    assert_eq!(tr.recommended_action, "No action needed.");
}

#[test]
fn inconclusive_explanation_says_why_and_what_would_decide() {
    let mut v = verdict(
        VerdictKind::Inconclusive,
        vec![metric(
            "error_rate",
            MetricStatus::Insufficient,
            0.005,
            0.005,
            0.0,
        )],
        vec![],
    );
    v.inconclusive_cause = Some(InconclusiveCause::ShortBaseline);
    v.reason = "only 4 baseline samples before the deploy, 12 are needed".into();
    v.needed = Some("8 more minutes of samples before the next deploy".into());
    let e = explain(&v);
    assert_eq!(
        e.headline,
        "checkout v1.4.2 (production): inconclusive, too little baseline before the deploy"
    );
    assert!(
        e.summary
            .contains("only 4 baseline samples before the deploy, 12 are needed."),
        "{}",
        e.summary
    );
    assert!(
        e.summary
            .contains("What would decide it: 8 more minutes of samples"),
        "{}",
        e.summary
    );
    let tr = triage(&v);
    assert_eq!(tr.confidence, Confidence::Low);
    assert!(
        tr.recommended_action.starts_with("Hold"),
        "{}",
        tr.recommended_action
    );
    assert_eq!(
        tr.next_checks[0],
        "8 more minutes of samples before the next deploy"
    );
}

#[test]
fn severity_follows_the_documented_rules() {
    // Error rate up 5.7 points: critical.
    assert_eq!(severity(&error_regression()), Severity::Critical);
    // Error rate up 0.8 points, 2.6x: high (any error-rate regression).
    let small = verdict(
        VerdictKind::Regression,
        vec![metric(
            "error_rate",
            MetricStatus::Regressed,
            0.005,
            0.013,
            6.0,
        )],
        vec![],
    );
    assert_eq!(severity(&small), Severity::High);
    // Latency +20 % at 4 sigmas: medium; +60 %: high; 3.5x: critical.
    let lat = |after: f64, sigmas: f64| {
        verdict(
            VerdictKind::Regression,
            vec![metric(
                "p95_latency_ms",
                MetricStatus::Regressed,
                200.0,
                after,
                sigmas,
            )],
            vec![],
        )
    };
    assert_eq!(severity(&lat(240.0, 4.0)), Severity::Medium);
    assert_eq!(severity(&lat(240.0, 12.0)), Severity::High);
    assert_eq!(severity(&lat(320.0, 4.0)), Severity::High);
    assert_eq!(severity(&lat(700.0, 30.0)), Severity::Critical);
    // Throughput halved: critical.
    let drop = verdict(
        VerdictKind::Regression,
        vec![metric(
            "request_rate",
            MetricStatus::Regressed,
            1200.0,
            500.0,
            9.0,
        )],
        vec![],
    );
    assert_eq!(severity(&drop), Severity::Critical);
    // A new fatal signature makes a modest latency regression critical.
    let mut fatal = lat(240.0, 4.0);
    fatal
        .signatures
        .push(signature(LogLevel::Fatal, SignatureChange::New, 3));
    assert_eq!(severity(&fatal), Severity::Critical);
    // Healthy never rates above low, even with a lot of movement in the evidence.
    let mut healthy = lat(700.0, 30.0);
    healthy.verdict = VerdictKind::Healthy;
    assert_eq!(severity(&healthy), Severity::Low);
    assert_eq!(
        serde_json::to_string(&Severity::Critical).unwrap(),
        "\"critical\""
    );
}

#[test]
fn triage_of_a_corroborated_regression_recommends_rollback_with_high_confidence() {
    let v = error_regression();
    let tr = triage(&v);
    assert_eq!(tr.confidence, Confidence::High, "{}", tr.confidence_reason);
    assert!(
        tr.confidence_reason.contains("9.09 times its threshold"),
        "{}",
        tr.confidence_reason
    );
    assert_eq!(
        tr.recommended_action,
        "Roll back deploy v1.4.2 of checkout in production (or halt its rollout), then confirm that error rate is back near 0.5%."
    );
    assert!(
        tr.hypothesis.contains("error rate 0.5% → 6.2% (12.4x)"),
        "{}",
        tr.hypothesis
    );
    assert!(
        tr.next_checks[0].contains("2026-03-30T19:30:45Z"),
        "{:?}",
        tr.next_checks
    );
    assert!(tr
        .evidence_used
        .iter()
        .any(|l| l.starts_with("error rate: 0.5% before, 6.2% after")));
    assert!(tr.limitations[0].contains("does not prove the cause"));
}

#[test]
fn triage_of_a_single_weak_signal_is_low_and_holds() {
    let mut m = metric("p95_latency_ms", MetricStatus::Regressed, 200.0, 240.0, 4.0);
    m.statistic = 6.0; // barely over the 5.3 threshold
    m.change_started_at = Some(t("2026-03-30T19:55:00Z")); // 25 min after the deploy
    let v = verdict(VerdictKind::Regression, vec![m], vec![]);
    let tr = triage(&v);
    assert_eq!(tr.confidence, Confidence::Low, "{}", tr.confidence_reason);
    assert!(
        tr.recommended_action.starts_with("Hold further rollouts"),
        "{}",
        tr.recommended_action
    );
    assert!(
        tr.confidence_reason
            .contains("only 25 min after the deploy"),
        "{}",
        tr.confidence_reason
    );
}

#[test]
fn rephrasing_check_rejects_a_changed_figure_in_a_real_explanation() {
    let text = explain(&error_regression()).to_text();
    assert!(numbers_in(&text).contains(&6.2));
    let altered = text.replace("6.2%", "6.3%");
    assert!(!numbers_consistent(&text, &altered));
    let dropped = text.replace("12.4x", "many times");
    assert!(!numbers_consistent(&text, &dropped));
}

#[test]
fn incident_markdown_has_facts_tables_timeline_notes_and_audit() {
    let v = error_regression();
    let e = explain(&v);
    let tr = triage(&v);
    let notes = vec![NoteDoc {
        author: "alice".into(),
        at: t("2026-03-30T19:40:00Z"),
        text: "rolling back".into(),
    }];
    let audit = vec![AuditDoc {
        at: t("2026-03-30T19:41:00Z"),
        actor: "alice".into(),
        action: "status".into(),
        detail: "open | acknowledged".into(),
    }];
    let doc = IncidentDoc {
        id: "42",
        title: "checkout v1.4.2: error rate up",
        status: "acknowledged",
        severity: severity(&v),
        opened_at: t("2026-03-30T19:33:00Z"),
        verdict: &v,
        explanation: &e,
        triage: &tr,
        notes: &notes,
        audit: &audit,
    };
    let md = markdown(&doc);
    for needle in [
        "# Incident 42: checkout v1.4.2: error rate up",
        "| Severity | critical |",
        "| error rate | **regressed** | 0.5% (n=60) | 6.2% (n=20) | 12.4x | +5.7 pp | 23.1 | 48.2 / 5.3 | 1 min after the deploy |",
        "| `a1b2c3d4` | Timeout connecting to <*> after <*> ms | new | error | 0 | 1234 | 2026-03-30T19:30:45Z |",
        "- 2026-03-30T19:30:00Z (at the deploy): deploy v1.4.2 of checkout to production",
        "- 2026-03-30T19:33:00Z (3 min after the deploy): regression detected",
        "- **alice** at 2026-03-30T19:40:00Z: rolling back",
        "| 2026-03-30T19:41:00Z | alice | status | open \\| acknowledged |",
        "**Recommended action:** Roll back deploy v1.4.2",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle:?}:\n{md}");
    }
    let j = json(&doc);
    assert_eq!(j["severity"], "critical");
    assert_eq!(j["verdict"]["deploy_id"], "v1.4.2");
    assert_eq!(j["triage"]["confidence"], "high");
    assert_eq!(j["notes"][0]["author"], "alice");
    assert_eq!(j["timeline"].as_array().unwrap().len(), 5);
    assert_eq!(j["explanation"]["headline"], e.headline);
}

#[test]
fn timeline_is_in_time_order() {
    let v = error_regression();
    let tl = timeline(&v);
    assert!(tl.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(tl[0].event, "baseline starts (60 samples)");
}

#[test]
fn verdict_markdown_works_without_an_incident() {
    let md = verdict_markdown(&error_regression());
    assert!(
        md.starts_with("# checkout v1.4.2 (production): regression\n"),
        "{md}"
    );
    assert!(md.contains("## Evidence"));
    assert!(!md.contains("## Notes"));
}

mod formatting {
    use proptest::prelude::*;
    use watchdog_core::explain::{format_number, format_value, numbers_in};

    proptest! {
        /// Every formatted figure reads back as one number within rounding of the value,
        /// which is what lets the rephrasing check compare texts by their numbers.
        #[test]
        fn formatted_numbers_read_back_within_rounding(x in -1e9f64..1e9) {
            prop_assume!(x.abs() >= 1e-3);
            let text = format_number(x);
            let got = numbers_in(&text);
            prop_assert_eq!(got.len(), 1, "{}", text);
            prop_assert!((got[0] - x.abs()).abs() <= 0.005 * x.abs(), "{} -> {:?}", text, got);
            prop_assert!(!text.contains('e'), "{}", text);
        }

        #[test]
        fn percentages_read_back_in_percent(p in 0.0001f64..1.0) {
            let text = format_value("error_rate", p);
            let got = numbers_in(&text);
            prop_assert_eq!(got.len(), 1, "{}", text);
            prop_assert!((got[0] - p * 100.0).abs() <= 0.005 * p * 100.0, "{}", text);
        }
    }
}
