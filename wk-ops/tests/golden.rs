//! Golden files: rendering examples/inventory.yaml must give exactly the files under
//! tests/golden/example/, and the repository's reference units in systemd/ must be those
//! rendered units. Regenerate both after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p wk-ops --test golden`, then review the diff.

mod common;

use common::*;
use std::path::Path;

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v != "0")
}

/// Makes `dir` hold exactly `files` (name → text).
fn replace_dir(dir: &Path, files: &[(String, String)]) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    for (name, text) in files {
        write(dir, name, text);
    }
}

/// Compares `actual` with the files in `golden`, reporting every difference as a diff.
fn compare(golden: &Path, actual: &[(String, String)]) {
    if updating() {
        replace_dir(golden, actual);
        eprintln!("updated {}", golden.display());
        return;
    }
    let mut problems = Vec::new();
    let expected = files_under(golden);
    let names: Vec<&String> = actual.iter().map(|(n, _)| n).collect();
    if expected.iter().collect::<Vec<_>>() != names {
        problems.push(format!(
            "file list differs:\n  golden: {expected:?}\n  actual: {names:?}"
        ));
    }
    for (name, text) in actual {
        let Ok(want) = std::fs::read_to_string(golden.join(name)) else {
            continue;
        };
        if &want != text {
            let diff = similar::TextDiff::from_lines(&want, text)
                .unified_diff()
                .header(&format!("golden/{name}"), &format!("rendered/{name}"))
                .to_string();
            problems.push(diff);
        }
    }
    assert!(
        problems.is_empty(),
        "{} differs from the render (UPDATE_GOLDEN=1 regenerates it):\n{}",
        golden.display(),
        problems.join("\n")
    );
}

fn render_example() -> Vec<(String, String)> {
    let t = tempfile::tempdir().unwrap();
    let inv = example_inventory();
    wk_ops(t.path(), &["render", inv.to_str().unwrap(), "--out", "out"]).expect(0);
    let out = t.path().join("out");
    files_under(&out)
        .into_iter()
        .map(|f| (f.clone(), read(&out, &f)))
        .collect()
}

#[test]
fn example_inventory_renders_the_golden_files() {
    let files = render_example();
    compare(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/example"),
        &files,
    );
}

#[test]
fn reference_units_in_systemd_dir_are_the_rendered_units() {
    let units: Vec<(String, String)> = render_example()
        .into_iter()
        .filter_map(|(name, text)| name.strip_prefix("systemd/").map(|n| (n.to_string(), text)))
        .collect();
    compare(&repo_root().join("systemd"), &units);
}
