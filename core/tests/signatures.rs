//! Cross-module tests of log signatures: id stability, templates of hand-written
//! messages, and the post-deploy evidence.

use watchdog_core::signatures::{
    parse_log_line, signature_evidence, LogHistory, MinerConfig, SignatureId, TemplateMiner,
};
use watchdog_core::{LogEvent, LogLevel, SignatureChange, Timestamp};

fn ids(lines: &[&str]) -> Vec<SignatureId> {
    let mut miner = TemplateMiner::default();
    lines.iter().map(|l| miner.add(l).signature).collect()
}

#[test]
fn ids_are_the_same_on_every_run_and_pinned() {
    let lines = [
        "Database timeout for user 123 after 3000 ms",
        "Connection refused to 10.0.3.17:5432 (attempt 2)",
        "Database timeout for user 98765 after 2500 ms",
    ];
    assert_eq!(ids(&lines), ids(&lines));
    // Pinned: FNV-1a 64 of the masked text of the template's first line. A change here
    // breaks every stored signature id and must be deliberate.
    assert_eq!(
        ids(&lines)[0].to_string(),
        format!(
            "{:016x}",
            fnv1a(b"Database timeout for user <*> after <*> ms")
        )
    );
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn ids_do_not_depend_on_unrelated_earlier_lines() {
    let alone = ids(&["Disk /dev/sda1 is 93% full", "Disk /dev/sdb2 is 97% full"]);
    let after_noise = ids(&[
        "User alice logged in from 192.168.1.4",
        "cache warmed in 120ms",
        "Disk /dev/sda1 is 93% full",
        "GET /health 200",
        "Disk /dev/sdb2 is 97% full",
    ]);
    assert_eq!(alone[0], after_noise[2]);
    assert_eq!(alone[1], after_noise[4]);
    // A template whose first line has only shape-masked variables gets the same id in
    // any order.
    let reversed = ids(&["Disk /dev/sdb2 is 97% full", "Disk /dev/sda1 is 93% full"]);
    assert_eq!(alone[0], reversed[0]);
}

#[test]
fn templates_of_hand_written_messages() {
    let cases = [
        ("worker 7 crashed", "worker <*> crashed"),
        ("object 0xdeadbeef freed", "object <*> freed"),
        (
            "request 8f91ab22-1c2d-4e5f-8a9b-0c1d2e3f4a5b failed",
            "request <*> failed",
        ),
        (
            "dial tcp 10.0.3.17:5432: refused",
            "dial tcp <*>:<*>: refused",
        ),
        ("listen on [::1]:8080", "listen on [<*>]:<*>"),
        ("cannot open /etc/app/conf.toml", "cannot open <*>"),
        ("fetch https://x.example/a?b=1 failed", "fetch <*> failed"),
        (
            "slow query took 1.5s (limit 300ms)",
            "slow query took <*> (limit <*>)",
        ),
        ("bounce for bob@example.org", "bounce for <*>"),
        ("unknown table \"order items\"", "unknown table \"<*>\""),
        (
            "login failed user=alice reason=expired",
            "login failed user=<*> reason=<*>",
        ),
    ];
    for (message, template) in cases {
        let mut miner = TemplateMiner::default();
        assert_eq!(miner.add(message).template, template, "for {message:?}");
    }
}

#[test]
fn word_variables_generalise_on_the_second_line() {
    let mut miner = TemplateMiner::default();
    let a = miner.add("session opened for user alice by (uid=0)");
    let b = miner.add("session opened for user bob by (uid=0)");
    let c = miner.add("session opened for user root by LOGIN(uid=0)");
    assert_eq!(a.signature, b.signature);
    assert_eq!(b.template, "session opened for user <*> by (uid=<*>)");
    assert_ne!(a.signature, c.signature);
}

/// The differences a deploy check needs are kept: outcome codes and states, and the
/// level, give different signatures, while the variable parts around them still merge.
#[test]
fn outcomes_and_levels_give_different_signatures() {
    let mut miner = TemplateMiner::default();
    let s503 = miner
        .add("GET /api/orders/17 returned 503 in 31 ms")
        .signature;
    let s404 = miner
        .add("GET /api/orders/18 returned 404 in 12 ms")
        .signature;
    let s503b = miner
        .add("GET /api/orders/99 returned 503 in 8 ms")
        .signature;
    assert_ne!(s503, s404);
    assert_eq!(s503, s503b);

    let failed = miner.add("job 17 finished status=FAILED").signature;
    let ok = miner.add("job 18 finished status=OK").signature;
    assert_ne!(failed, ok);
    assert_eq!(miner.add("job 19 finished status=FAILED").signature, failed);

    let npe = miner
        .add("request 7 failed with java.lang.NullPointerException in handler")
        .signature;
    let ioe = miner
        .add("request 8 failed with java.io.IOException in handler")
        .signature;
    assert_ne!(npe, ioe);

    let on = miner
        .add("10:46:47.425 : BTLE scanner Powered On")
        .signature;
    let off = miner
        .add("21:48:53.041 : BTLE scanner Powered Off")
        .signature;
    assert_ne!(on, off);

    let error = miner
        .add_leveled(Some(LogLevel::Error), "payment failed for order 7")
        .signature;
    let info = miner
        .add_leveled(Some(LogLevel::Info), "payment failed for order 8")
        .signature;
    let error_again = miner
        .add_leveled(Some(LogLevel::Error), "payment failed for order 9")
        .signature;
    assert_ne!(error, info);
    assert_eq!(error, error_again);
    // Pinned: a leveled template's id hashes a level byte before the masked text.
    assert_eq!(error.0, fnv1a(b"\x04payment failed for order <*>"));
}

/// A `<*>` already in a template is not agreement: a cluster cannot creep over
/// messages that share less and less with the line that created it.
#[test]
fn generalisation_does_not_snowball() {
    let mut miner = TemplateMiner::default();
    let a = miner.add("sync of alpha to north took long and failed badly");
    let b = miner.add("sync of beta to south took long and failed badly");
    assert_eq!(a.signature, b.signature);
    assert_eq!(b.template, "sync of <*> to <*> took long and failed badly");
    // Same words as the template's constants but two more differences: Drain's rule
    // (existing `<*>` agrees) would take it at 8/10; here 6/10 agree.
    let c = miner.add("sync of gamma to east took short and passed badly");
    assert_ne!(c.signature, a.signature);
    // A line differing only where the template is already variable still joins.
    let d = miner.add("sync of delta to west took long and failed badly");
    assert_eq!(d.signature, a.signature);
}

#[test]
fn parsed_lines_feed_the_miner() {
    let mut miner = TemplateMiner::default();
    let a = parse_log_line(r#"{"level":"error","message":"db timeout after 30ms"}"#);
    let b = parse_log_line("2026-03-30T19:30:00Z ERROR db timeout after 45ms");
    assert_eq!(
        miner.add(&a.message).signature,
        miner.add(&b.message).signature
    );
    assert_eq!(miner.len(), 1);
}

const MIN: i64 = 60_000;

fn at(minute: f64) -> Timestamp {
    Timestamp(1_774_899_000_000 + (minute * MIN as f64) as i64)
}

fn event(minute: f64, level: LogLevel, message: &str) -> LogEvent {
    LogEvent {
        timestamp: at(minute),
        service: "checkout".into(),
        environment: "production".into(),
        level,
        message: message.into(),
    }
}

/// 60 minutes of baseline and 20 after a deploy at minute 60.
fn scenario() -> (LogHistory, TemplateMiner) {
    let mut miner = TemplateMiner::new(MinerConfig::default());
    let mut history = LogHistory::new(100_000);
    let mut events = Vec::new();
    for s in 0..80 * 6 {
        let minute = s as f64 / 6.0;
        // Steady chatter: 6 a minute all along (quiet).
        events.push(event(
            minute,
            LogLevel::Info,
            &format!("served request {s} in 12ms"),
        ));
        // A warning at 1 a minute before, 3 a minute after: surging.
        let every = if minute < 60.0 { 6 } else { 2 };
        if s % every == 0 {
            events.push(event(
                minute,
                LogLevel::Warn,
                &format!("retrying call to 10.0.0.{} (attempt 2)", s % 7),
            ));
        }
    }
    // A new error: 15 occurrences, one a minute from minute 62.
    for k in 0..15 {
        events.push(event(
            62.0 + k as f64,
            LogLevel::Error,
            &format!("payment provider rejected card ending {k:04}"),
        ));
    }
    // A one-off new line: below the minimum count.
    events.push(event(65.0, LogLevel::Error, "panic in handler"));
    events.sort_by_key(|e| e.timestamp);
    for e in &events {
        history.push(&mut miner, e);
    }
    (history, miner)
}

#[test]
fn new_and_surging_signatures_are_found_ranked_and_quiet_ones_are_not() {
    let (history, miner) = scenario();
    let found = signature_evidence(&history, &miner, at(0.0), at(60.0), at(80.0), 0.01);
    assert_eq!(found.len(), 2, "{found:#?}");
    let (new, surging) = (&found[0], &found[1]);
    assert!(new.score > surging.score);
    assert_eq!(new.change, SignatureChange::New);
    assert_eq!(new.template, "payment provider rejected card ending <*>");
    assert_eq!(new.level, LogLevel::Error);
    assert_eq!((new.count_before, new.count_after), (0, 15));
    assert_eq!(new.first_seen, at(62.0));
    assert_eq!(new.example, "payment provider rejected card ending 0000");
    assert!((new.rate_after_per_min - 0.75).abs() < 1e-9);
    // At the k-th occurrence (minute 61 + k) the window is w = 1 + k minutes and
    // p = (w / (60 + w))^k: 0.032 at k = 1, 0.0023 at k = 2, below 0.01 / 2 tests.
    assert_eq!(new.significant_at, Some(at(63.0)));
    assert_eq!(surging.change, SignatureChange::Surging);
    assert_eq!(surging.template, "retrying call to <*> (attempt <*>)");
    assert_eq!(surging.level, LogLevel::Warn);
    assert_eq!((surging.count_before, surging.count_after), (60, 60));
    assert!((surging.rate_before_per_min - 1.0).abs() < 1e-9);
    assert!((surging.rate_after_per_min - 3.0).abs() < 1e-9);
    let s_at = surging.significant_at.expect("significant");
    assert!(s_at > at(60.0) && s_at <= at(80.0));
    assert!(found
        .iter()
        .all(|e| !e.template.starts_with("served request")));
}

#[test]
fn nothing_is_reported_without_a_change_or_a_baseline() {
    let (history, miner) = scenario();
    // Before the deploy nothing changed: a pseudo-deploy at minute 30 finds nothing.
    let found = signature_evidence(&history, &miner, at(0.0), at(30.0), at(55.0), 0.01);
    assert!(found.is_empty(), "{found:#?}");
    // No baseline window: nothing can be called new.
    let found = signature_evidence(&history, &miner, at(60.0), at(60.0), at(80.0), 0.01);
    assert!(found.is_empty());
}

#[test]
fn history_is_bounded_and_baseline_shrinks_to_what_it_holds() {
    let mut miner = TemplateMiner::default();
    let mut history = LogHistory::new(50);
    for k in 0..200 {
        history.push(&mut miner, &event(k as f64, LogLevel::Info, "tick"));
    }
    assert_eq!(history.len(), 50);
    assert_eq!(history.complete_after(), Some(at(149.0)));
}
