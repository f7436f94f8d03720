//! Grouping accuracy of the default miner on the Loghub 2k samples in
//! `../shared/data/loghub-2k` (read when present; the test passes with a message when
//! the data is absent).
//!
//! Grouping accuracy (GA): a line is correct when the set of lines sharing its predicted
//! signature equals the set of lines sharing its true event id; GA is the share of correct
//! lines. Run with `cargo test -p watchdog-core --test loghub -- --nocapture` to see the
//! figures.

use std::collections::HashMap;
use std::path::Path;

use watchdog_core::signatures::TemplateMiner;

const SYSTEMS: [&str; 8] = [
    "HDFS",
    "OpenSSH",
    "Linux",
    "HealthApp",
    "Android",
    "Apache",
    "Mac",
    "Windows",
];

/// Lowest acceptable GA per system and on average, a little under what the default
/// configuration reaches (see docs/signatures.md), so a regression in masking or
/// clustering fails here.
const FLOORS: [f64; 8] = [0.99, 0.99, 0.80, 0.99, 0.94, 0.99, 0.95, 0.99];
const AVERAGE_FLOOR: f64 = 0.96;

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `""` for a quote inside quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// `(content, event id)` of every line of a structured Loghub CSV.
fn read_structured(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header = csv_fields(lines.next().expect("csv has a header"));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{} has no {name} column", path.display()))
    };
    let (content, event) = (col("Content"), col("EventId"));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f = csv_fields(l);
            (f[content].clone(), f[event].clone())
        })
        .collect()
}

/// Grouping accuracy of `predicted` against `truth` (same length).
fn grouping_accuracy<P: Eq + std::hash::Hash, T: Eq + std::hash::Hash>(
    predicted: &[P],
    truth: &[T],
) -> f64 {
    let mut truth_sizes: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *truth_sizes.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let correct: usize = groups
        .values()
        .filter(|lines| {
            let t = &truth[lines[0]];
            lines.iter().all(|&i| &truth[i] == t) && truth_sizes[t] == lines.len()
        })
        .map(Vec::len)
        .sum();
    correct as f64 / predicted.len() as f64
}

#[test]
fn grouping_accuracy_is_scored_on_known_cases() {
    // Two true groups; the prediction splits the second one: only group A is correct.
    let truth = ["A", "A", "B", "B"];
    assert_eq!(grouping_accuracy(&[1, 1, 2, 3], &truth), 0.5);
    assert_eq!(grouping_accuracy(&[1, 1, 2, 2], &truth), 1.0);
    assert_eq!(grouping_accuracy(&[1, 1, 1, 1], &truth), 0.0);
    assert_eq!(csv_fields(r#"1,"a, ""b""",c"#), vec!["1", r#"a, "b""#, "c"]);
}

/// Needs the Loghub samples beside the project (`../shared/data/loghub-2k`), which a
/// fresh clone does not have, so it is not part of the default run:
/// `cargo test --release -p watchdog-core --test loghub -- --ignored --nocapture`.
/// Without the data it fails rather than passing unmeasured.
#[test]
#[ignore = "needs ../shared/data/loghub-2k; run with --ignored"]
fn loghub_grouping_accuracy() {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/loghub-2k"
    ));
    assert!(
        root.is_dir(),
        "the Loghub samples are not at {}: grouping accuracy cannot be measured",
        root.display()
    );
    let mut total = 0.0;
    let mut failures = Vec::new();
    for (system, floor) in SYSTEMS.iter().zip(FLOORS) {
        let path = root
            .join(system)
            .join(format!("{system}_2k.log_structured_corrected.csv"));
        let rows = read_structured(&path);
        let mut miner = TemplateMiner::default();
        let predicted: Vec<_> = rows.iter().map(|(c, _)| miner.add(c).signature).collect();
        let truth: Vec<_> = rows.iter().map(|(_, e)| e.as_str()).collect();
        let ga = grouping_accuracy(&predicted, &truth);
        println!(
            "{system:<10} GA {ga:.4} ({} lines, {} templates found)",
            rows.len(),
            miner.len()
        );
        if std::env::var_os("LOGHUB_DEBUG").is_some() {
            debug_errors(&rows, &predicted, &miner);
        }
        if ga < floor {
            failures.push(format!("{system}: GA {ga:.4} below floor {floor}"));
        }
        total += ga;
    }
    let average = total / SYSTEMS.len() as f64;
    println!("average    GA {average:.4}");
    assert!(
        average >= AVERAGE_FLOOR,
        "average GA {average:.4} below {AVERAGE_FLOOR}"
    );
    assert!(failures.is_empty(), "{}", failures.join("; "));
}

/// Prints the true groups that were split or merged (set LOGHUB_DEBUG=1).
fn debug_errors(
    rows: &[(String, String)],
    predicted: &[watchdog_core::signatures::SignatureId],
    miner: &TemplateMiner,
) {
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (_, e)) in rows.iter().enumerate() {
        by_truth.entry(e).or_default().push(i);
    }
    let mut by_pred: HashMap<_, Vec<usize>> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        by_pred.entry(*p).or_default().push(i);
    }
    for (e, lines) in &by_truth {
        let preds: std::collections::BTreeSet<_> = lines.iter().map(|&i| predicted[i]).collect();
        let merged = preds.len() == 1 && by_pred[&predicted[lines[0]]].len() != lines.len();
        if preds.len() > 1 || merged {
            println!(
                "  {e} ({} lines) -> {} groups{}",
                lines.len(),
                preds.len(),
                if merged { " MERGED" } else { "" }
            );
            for p in preds.iter().take(4) {
                let first = lines.iter().find(|&&i| predicted[i] == *p).unwrap();
                println!(
                    "     {:?}  | {}",
                    miner.template(*p).unwrap_or("?"),
                    rows[*first].0
                );
            }
        }
    }
}
