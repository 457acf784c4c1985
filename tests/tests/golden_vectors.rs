//! The protocol golden vectors (`tests/js/golden/vectors.json`, read by
//! `wukongim/tests/proto_golden.rs`) are regenerated on every run from the real wukongimjssdk
//! (`node tests/js/golden/gen.js`, which also checks every server-to-client vector by decoding
//! it with the SDK) and must equal the checked-in file byte for byte: a hand edit, a changed
//! generator or a different SDK version fails here.

use std::process::Command;
use wk_tests::js::js_dir;

#[test]
fn checked_in_vectors_equal_a_fresh_run_of_the_sdk_generator() {
    let js = js_dir();
    assert!(
        js.join("dist/sdk.cjs").exists(),
        "tests/js/dist/sdk.cjs missing: run scripts/test (it installs and bundles wukongimjssdk)"
    );
    let node = wk_testkit::require("node", "nodejs");
    let scratch = tempfile::tempdir().unwrap();
    let fresh = scratch.path().join("vectors.json");
    let out = Command::new(node)
        .arg(js.join("golden/gen.js"))
        .arg(&fresh)
        .current_dir(&js)
        .output()
        .expect("run node golden/gen.js");
    assert!(
        out.status.success(),
        "gen.js failed (an SDK check of a vector failed?):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(&fresh).unwrap();
    let checked_in = std::fs::read_to_string(js.join("golden/vectors.json")).unwrap();
    if fresh != checked_in {
        let first = fresh
            .lines()
            .zip(checked_in.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| fresh.lines().count().min(checked_in.lines().count()));
        let around = |text: &str| {
            text.lines()
                .skip(first.saturating_sub(3))
                .take(7)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "tests/js/golden/vectors.json differs from a fresh `node golden/gen.js` at line {}:\n\
             --- checked in ---\n{}\n--- generated ---\n{}\n\
             Regenerate with `cd tests/js && node golden/gen.js` and review the diff.",
            first + 1,
            around(&checked_in),
            around(&fresh)
        );
    }
}
