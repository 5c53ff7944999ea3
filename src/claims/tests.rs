//! Tests of the claim rules on a real lecture run (tests/fixtures/lecture-results.json, from
//! `concbench run workloads/lecture.toml` on a 2-core machine), and on copies of it edited to
//! contradict or blur each claim.

use super::*;
use crate::report::result::{CellResult, Spread};

fn fixture() -> Results {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lecture-results.json");
    crate::report::json::read(&p).unwrap()
}

/// A real `concbench run workloads/faults.toml` (every model × panic, abort, segv, kill9, hang
/// on a busy 2-core machine).
fn faults() -> Results {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faults-results.json");
    crate::report::json::read(&p).unwrap()
}

fn verdict(r: &[Results], id: &str) -> ClaimResult {
    evaluate(r).into_iter().find(|c| c.id == id).unwrap()
}

fn mech<'a>(r: &'a mut Results, id: &str, key: &str, value: &str) -> &'a mut MechanicResult {
    r.mechanics
        .iter_mut()
        .find(|m| m.mechanic == id && m.params.get(key).is_some_and(|v| v == value))
        .unwrap()
}

fn spread(median: f64, min: f64, max: f64) -> Spread {
    Spread { median, min, max }
}

#[test]
fn the_real_run_gives_a_verdict_with_numbers_for_every_claim() {
    let claims = evaluate(&[fixture(), faults()]);
    assert_eq!(claims.len(), rules::ALL.len());
    for c in &claims {
        assert!(!c.evidence.is_empty(), "{}", c.id);
        assert!(
            !c.evidence.starts_with("not measured"),
            "{}: {}",
            c.id,
            c.evidence
        );
        assert!(c.evidence.chars().any(|ch| ch.is_ascii_digit()), "{}", c.id);
    }
    // Separated by far more than their spread in this run.
    for id in [
        "thread-create",
        "ipc-shm",
        "fork-cow",
        "counter-race",
        "loop-io-cpu",
    ] {
        let c = verdict(&[fixture()], id);
        assert_eq!(c.verdict, Verdict::Holds, "{id}: {}", c.evidence);
    }
}

#[test]
fn contradicting_figures_flip_the_verdict() {
    let mut r = fixture();
    let fork = mech(&mut r, "spawn", "what", "fork").ns_per_iter;
    mech(&mut r, "spawn", "what", "thread").ns_per_iter =
        spread(fork.median * 3.0, fork.max * 2.0, fork.max * 4.0);
    let c = verdict(&[r], "thread-create");
    assert_eq!(c.verdict, Verdict::DoesNotHold, "{}", c.evidence);
    assert!(c.evidence.contains("dearer as a thread"), "{}", c.evidence);

    let mut r = fixture();
    mech(&mut r, "counter", "sync", "none")
        .extra
        .insert("lost_updates".into(), spread(0.0, 0.0, 0.0));
    assert_eq!(verdict(&[r], "counter-race").verdict, Verdict::DoesNotHold);

    let mut r = fixture();
    let lp = r
        .cells
        .iter()
        .find(|c| c.workload == "spin" && c.model == "event-loop");
    let boosted = lp.unwrap().ops_per_sec.median * 10.0;
    for c in r.cells.iter_mut() {
        if c.workload == "spin" && c.model == "event-loop" {
            c.ops_per_sec = spread(boosted, boosted, boosted);
        }
    }
    assert_eq!(verdict(&[r], "loop-io-cpu").verdict, Verdict::DoesNotHold);
}

#[test]
fn overlapping_ranges_are_inconclusive() {
    let mut r = fixture();
    let fork = mech(&mut r, "spawn", "what", "fork").ns_per_iter;
    mech(&mut r, "spawn", "what", "thread").ns_per_iter =
        spread(fork.median * 0.9, fork.min * 0.5, fork.max);
    assert_eq!(
        verdict(&[r], "thread-create").verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn missing_figures_say_what_to_run() {
    let mut r = fixture();
    r.mechanics.clear();
    for id in [
        "thread-create",
        "thread-switch",
        "ipc-shm",
        "fork-cow",
        "counter-race",
    ] {
        let c = verdict(std::slice::from_ref(&r), id);
        assert_eq!(c.verdict, Verdict::Inconclusive, "{id}");
        assert!(c.evidence.contains("workloads/lecture.toml"), "{id}");
    }
    // Failed cells are not evidence.
    let mut r = fixture();
    for c in r.cells.iter_mut() {
        c.status = Status::Failed;
    }
    assert!(
        verdict(&[r], "loop-io-cpu")
            .evidence
            .starts_with("not measured")
    );
}

#[test]
fn files_are_pooled() {
    let (mut cells, mut mechs) = (fixture(), fixture());
    cells.mechanics.clear();
    mechs.cells.clear();
    let split = evaluate(&[cells, mechs]);
    let whole = evaluate(&[fixture()]);
    for (a, b) in split.iter().zip(&whole) {
        assert_eq!(a.verdict, b.verdict, "{}", a.id);
        assert_eq!(a.evidence, b.evidence, "{}", a.id);
    }
}

#[test]
fn markdown_is_one_table_row_per_claim() {
    let claims = evaluate(&[fixture()]);
    let md = to_markdown(&claims, Some(2));
    let rows = md.lines().filter(|l| l.starts_with("| ")).count();
    assert_eq!(rows, claims.len() + 1, "{md}");
}

#[test]
fn fault_isolation_holds_on_the_real_faults_run() {
    let c = verdict(&[faults()], "fault-isolation");
    assert_eq!(c.verdict, Verdict::Holds, "{}", c.evidence);
    for part in [
        "siblings kept running",
        "replaced after",
        "the whole process died",
    ] {
        assert!(c.evidence.contains(part), "{part}: {}", c.evidence);
    }
    // Without fault cells it says what to run.
    let c = verdict(&[fixture()], "fault-isolation");
    assert_eq!(c.verdict, Verdict::Inconclusive);
    assert!(
        c.evidence.contains("workloads/lecture.toml"),
        "{}",
        c.evidence
    );
}

fn edit_faults(f: impl Fn(&mut CellResult)) -> Results {
    let mut r = faults();
    for c in r.cells.iter_mut().filter(|c| c.fault.is_some()) {
        f(c);
    }
    r
}

#[test]
fn contradicting_fault_outcomes_flip_or_blur_the_verdict() {
    use crate::model::UnitKind;
    // Siblings of a crashed worker process stopped: the first half fails.
    let r = edit_faults(|c| {
        if c.unit == UnitKind::Process {
            c.fault.as_mut().unwrap().others_kept_running = Some(false);
        }
    });
    let v = verdict(&[r], "fault-isolation");
    assert_eq!(v.verdict, Verdict::DoesNotHold, "{}", v.evidence);
    assert!(v.evidence.contains("siblings stopped"), "{}", v.evidence);
    // No fatal fault under threads ever took the process down: the second half fails.
    let r = edit_faults(|c| {
        if c.unit == UnitKind::Thread {
            c.fault.as_mut().unwrap().process_lost = false;
        }
    });
    let v = verdict(&[r], "fault-isolation");
    assert_eq!(v.verdict, Verdict::DoesNotHold, "{}", v.evidence);
    assert!(v.evidence.contains("died in 0 of"), "{}", v.evidence);
    // Only process cells: half the claim is unmeasured.
    let mut r = faults();
    r.cells.retain(|c| c.unit == UnitKind::Process);
    assert_eq!(
        verdict(&[r], "fault-isolation").verdict,
        Verdict::Inconclusive
    );
    // Faults that never fired prove nothing.
    let r = edit_faults(|c| c.fault.as_mut().unwrap().fired = false);
    let v = verdict(&[r], "fault-isolation");
    assert_eq!(v.verdict, Verdict::Inconclusive);
    assert!(v.evidence.contains("lower K"), "{}", v.evidence);
}

#[test]
fn fault_cells_are_not_evidence_for_the_other_claims() {
    // The faults run's fault cells, with spin throughput crushed by the faults, pooled with
    // the lecture run: every other claim reads the same figures as before.
    let mut f = faults();
    f.cells.retain(|c| c.params.contains_key("fault"));
    for c in f.cells.iter_mut() {
        c.params.insert("op_time".into(), "10us".into());
    }
    let pooled = evaluate(&[fixture(), f]);
    let alone = evaluate(&[fixture()]);
    for (a, b) in pooled.iter().zip(&alone) {
        if a.id != "fault-isolation" {
            assert_eq!(
                (a.verdict, &a.evidence),
                (b.verdict, &b.evidence),
                "{}",
                a.id
            );
        }
    }
}
