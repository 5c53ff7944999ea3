//! Unit tests of suite parsing: expansion, errors naming line and key, loads, pins.

use super::*;

fn p(text: &str) -> Result<Suite, SuiteError> {
    parse(text, Path::new("t.toml"))
}

#[test]
fn expands_matrix_and_forces_single_worker_loop() {
    let s = p(r#"
name = "x"
duration = "100ms"
[[matrix]]
workload = "spin"
params = { op_time = ["1us", "10us"] }
models = ["event-loop", "threads"]
workers = [1, 2]
tasks = 2
"#)
    .unwrap();
    // 2 params × (event-loop w1 + threads w1, w2) = 6
    assert_eq!(s.cells.len(), 6);
    assert_eq!(
        s.cells[0].id,
        "spin/iterations=0,op_time=1us/event-loop/w1/t2/spread/closed"
    );
    assert!(
        s.cells
            .iter()
            .filter(|c| c.model.id == "event-loop")
            .all(|c| c.workers == 1)
    );
    assert_eq!(s.duration, Duration::from_millis(100));
    assert_eq!(s.repeats, 3);
}

#[test]
fn errors_name_line_and_key() {
    let e =
        p("name = \"x\"\n[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkers = 0\n")
            .unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (5, "matrix[0].workers"), "{e}");
    let e = p("[[matrix]]\nworkload = \"spinn\"\nmodels = [\"threads\"]\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("known workloads"), "{e}");
    let e =
        p("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkerz = 2\n").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("unknown field"), "{e}");
    let e = p("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkers = 4\ntasks = 2\n")
        .unwrap_err();
    assert_eq!(e.key, "matrix[0].tasks", "{e}");
    let e =
        p("duration = \"2 parsecs\"\n[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\n")
            .unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (1, "duration"), "{e}");
    let e = p("[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"fast\" }\nmodels = [\"threads\"]\n").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("op_time"), "{e}");
    let e = p("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nload = { rate = -5 }\n")
        .unwrap_err();
    assert!(e.message.contains("out of range"), "{e}");
    assert!(e.to_string().starts_with("t.toml:4:"), "{e}");
}

#[test]
fn loads_and_pins() {
    let s = p("[[matrix]]\nworkload = \"sleep\"\nmodels = [\"threads\"]\npin = [\"none\", \"same-core\"]\nload = [\"closed\", { rate = 500 }]\n").unwrap();
    assert_eq!(s.cells.len(), 4);
    assert!(
        s.cells
            .iter()
            .any(|c| c.load == Load::Open { rate: 500.0 } && c.id.ends_with("/same-core/r500"))
    );
}

#[test]
fn workers_in_cores_and_mechanic_tables() {
    let n = crate::sys::allowed_cpus().len();
    let s = p("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkers = [1, \"cores\", \"4*cores\"]\n[[mechanic]]\nmechanic = \"spawn\"\nparams = { what = [\"fork\", \"thread\"] }\n").unwrap();
    let ws: Vec<usize> = s.cells.iter().map(|c| c.workers).collect();
    assert_eq!(ws, vec![1, n, 4 * n]);
    assert_eq!(s.mechanics.len(), 2);
    assert_eq!(s.mechanics[0].id, "spawn/what=fork");
    let e = p("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkers = \"many\"\n")
        .unwrap_err();
    assert!(e.message.contains("N*cores"), "{e}");
    let e = p("[[mechanic]]\nmechanic = \"pingpng\"\n").unwrap_err();
    assert!(e.message.contains("known mechanics"), "{e}");
    let e = p("[[mechanic]]\nmechanic = \"spawn\"\nparams = { what = \"vfork\" }\n").unwrap_err();
    assert!(e.message.contains("\"fork\""), "{e}");
    assert_eq!(e.line, 3);
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

#[test]
fn every_workload_takes_a_fault_and_the_id_carries_it() {
    let s = p("[[matrix]]\nworkload = \"sleep\"\nparams = { fault = [\"none\", \"kill9@5_000\"] }\nmodels = [\"processes\"]\n").unwrap();
    assert_eq!(s.cells.len(), 2);
    assert_eq!(s.cells[0].params.fault(), None);
    assert!(
        !s.cells[0].id.contains("fault"),
        "none is dropped: {}",
        s.cells[0].id
    );
    let f = s.cells[1].params.fault().unwrap();
    assert_eq!((f.kind, f.at), (crate::fault::FaultKind::Kill9, 5000));
    assert!(
        s.cells[1]
            .id
            .starts_with("sleep/delay=10ms,fault=kill9@5000/"),
        "{}",
        s.cells[1].id
    );
    assert_eq!(s.cells[1].params.to_map()["fault"], "kill9@5000");
    let e = p("[[matrix]]\nworkload = \"spin\"\nparams = { fault = \"boom@1\" }\nmodels = [\"threads\"]\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (3, "matrix[0].params"), "{e}");
    assert!(e.message.contains("segv"), "{e}");
    let e = p("[[matrix]]\nworkload = \"spin\"\nparams = { faults = \"panic@1\" }\nmodels = [\"threads\"]\n").unwrap_err();
    assert!(
        e.message.contains("`fault`, which every workload takes"),
        "{e}"
    );
    // Mechanics take no fault.
    assert!(p("[[mechanic]]\nmechanic = \"spawn\"\nparams = { fault = \"panic@1\" }\n").is_err());
}
