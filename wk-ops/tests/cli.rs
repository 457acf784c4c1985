//! `wk-ops render` through its command line: reports, --check, --diff, --only, --templates,
//! --prune, exit codes, and inventory errors with file, line, key path and reason.

mod common;

use common::*;

fn render(dir: &std::path::Path, inv: &str, extra: &[&str]) -> Run {
    write(dir, "inventory.yaml", inv);
    let mut args = vec!["render", "inventory.yaml", "--out", "out"];
    args.extend_from_slice(extra);
    wk_ops(dir, &args)
}

#[test]
fn reports_created_then_unchanged_then_updated() {
    let t = tempfile::tempdir().unwrap();
    let first = render(t.path(), &minimal_inventory(""), &[]).expect(0);
    assert!(
        first.stdout.contains("created   nodes/1/wk.yaml"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("0 updated, 0 unchanged"),
        "{}",
        first.stdout
    );
    assert!(t.path().join("out/systemd/wukongim@.service").exists());
    assert!(
        !t.path().join("out/nginx").exists(),
        "no loadBalancer section, no nginx.conf"
    );

    let second = render(t.path(), &minimal_inventory(""), &[]).expect(0);
    assert!(
        second.stdout.contains("unchanged nodes/1/wk.yaml"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains(" 0 created, 0 updated,"),
        "{}",
        second.stdout
    );

    let changed = minimal_inventory("defaults: { ports: { api: 6001 } }\n");
    let third = render(t.path(), &changed, &[]).expect(0);
    assert!(
        third.stdout.contains("updated   nodes/2/wk.yaml"),
        "{}",
        third.stdout
    );
    assert!(read(t.path(), "out/nodes/2/wk.yaml").contains("httpAddr: \"10.0.0.2:6001\""));
}

#[test]
fn check_exits_1_and_lists_changes_then_0_when_up_to_date() {
    let t = tempfile::tempdir().unwrap();
    let inv = minimal_inventory("");
    let run = render(t.path(), &inv, &["--check"]).expect(1);
    assert!(
        run.stdout.contains("create    nodes/3/wk.yaml"),
        "{}",
        run.stdout
    );
    assert!(!t.path().join("out").exists(), "--check writes nothing");

    render(t.path(), &inv, &[]).expect(0);
    let run = render(t.path(), &inv, &["--check"]).expect(0);
    assert!(run.stdout.contains("files up to date"), "{}", run.stdout);

    std::fs::write(t.path().join("out/nodes/1/wk.yaml"), "edited by hand\n").unwrap();
    let run = render(t.path(), &inv, &["--check"]).expect(1);
    assert!(
        run.stdout.contains("update    nodes/1/wk.yaml"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 of "), "{}", run.stdout);
}

#[test]
fn diff_prints_unified_diff_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    render(t.path(), &minimal_inventory(""), &[]).expect(0);
    let before = read(t.path(), "out/nodes/1/wk.yaml");
    let inv = minimal_inventory("defaults: { ports: { tcp: 7100 } }\n");
    let run = render(t.path(), &inv, &["--diff"]).expect(0);
    assert!(
        run.stdout
            .contains("--- a/nodes/1/wk.yaml\n+++ b/nodes/1/wk.yaml\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("-addr: \"tcp://10.0.0.1:5100\"\n+addr: \"tcp://10.0.0.1:7100\"\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        read(t.path(), "out/nodes/1/wk.yaml"),
        before,
        "--diff writes nothing"
    );
    render(t.path(), &inv, &["--diff", "--check"]).expect(1);
}

#[test]
fn only_renders_the_named_kinds() {
    let t = tempfile::tempdir().unwrap();
    render(
        t.path(),
        &minimal_inventory(""),
        &["--only", "nodes,prometheus"],
    )
    .expect(0);
    assert_eq!(
        files_under(&t.path().join("out")),
        [
            "nodes/1/wk.yaml",
            "nodes/2/wk.yaml",
            "nodes/3/wk.yaml",
            "prometheus/prometheus.yml",
            "prometheus/wukongim-alerts.yml"
        ]
    );
    let run = render(t.path(), &minimal_inventory(""), &["--only", "nginx"]).expect(2);
    assert!(
        run.stderr.contains("no loadBalancer section"),
        "{}",
        run.stderr
    );
    let run = render(t.path(), &minimal_inventory(""), &["--only", "bogus"]).expect(2);
    assert!(
        run.stderr.contains("invalid value 'bogus'"),
        "{}",
        run.stderr
    );
}

#[test]
fn stale_files_are_reported_and_pruned_on_request() {
    let t = tempfile::tempdir().unwrap();
    // The extra line lands right after node 3, inside `nodes:`.
    let four = minimal_inventory("  - { id: 4, host: 10.0.0.4 }\n");
    render(t.path(), &four, &[]).expect(0);
    assert!(t.path().join("out/nodes/4/wk.yaml").exists());
    let run = render(t.path(), &minimal_inventory(""), &["--check"]).expect(1);
    assert!(
        run.stdout.contains("stale     nodes/4/wk.yaml"),
        "{}",
        run.stdout
    );
    let run = render(t.path(), &minimal_inventory(""), &[]).expect(0);
    assert!(
        run.stdout
            .contains("nodes/4/wk.yaml (no longer rendered; --prune removes it)"),
        "{}",
        run.stdout
    );
    assert!(t.path().join("out/nodes/4/wk.yaml").exists());
    let run = render(t.path(), &minimal_inventory(""), &["--prune"]).expect(0);
    assert!(
        run.stdout.contains("nodes/4/wk.yaml (removed)"),
        "{}",
        run.stdout
    );
    assert!(!t.path().join("out/nodes/4/wk.yaml").exists());
    render(t.path(), &minimal_inventory(""), &["--check"]).expect(0);
}

#[test]
fn invalid_inventory_lists_every_problem_with_line_and_key_path() {
    let t = tempfile::tempdir().unwrap();
    let inv = "\
cluster:
  name: im-prod
  raft: { electionTick: 1, heartbeatTik: 1 }
  tls: { enabled: true }
defaults:
  ports: { api: 5001 }
nodes:
  - { id: 1001, host: 10.0.0.1 }
  - { id: 1001, host: 10.0.0.2 }
  - { id: 1003, host: 10.0.0.1, ports: { tcp: 5001 } }
  - { id: 1004, host: 10.0.0.5 }
  - { id: 1005, host: 10.0.0.5, ports: { cluster: 1, tcp: 5100, ws: 2, api: 3, metrics: 4 } }
  - { id: 0, host: 10.0.0.4 }
loadBalancer: { kinds: [nginx], listen: { api: 80, ws: 80 } }
backup: { dir: relative/path }
";
    let run = render(t.path(), inv, &[]).expect(2);
    let e = &run.stderr;
    assert!(e.contains("invalid inventory inventory.yaml ("), "{e}");
    for expected in [
        "inventory.yaml:3:28: cluster.raft.heartbeatTik: unknown key `heartbeatTik` (expected one of: heartbeatTick,",
        "inventory.yaml:9:7: nodes[1].id: duplicate node id 1001 (also used by nodes[0])",
        "inventory.yaml:10:17: nodes[2].host: is on host 10.0.0.1 like nodes[0] (id 1001) and uses the same ports: \
         cluster 11110, tcp 5001 (its api port), ws 5200, api 5001, metrics 5300;",
        "inventory.yaml:12:54: nodes[4].ports.tcp: is on host 10.0.0.5 like nodes[3] (id 1004) and uses the same port: tcp 5100;",
        "inventory.yaml:13:7: nodes[5].id: node id 0 does not fit",
        "inventory.yaml:14:52: loadBalancer.listen.ws: port 80 is also the api listen port",
        "inventory.yaml:15:11: backup.dir: `relative/path` is not an absolute path",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in:\n{e}");
    }
    assert!(
        !t.path().join("out").exists(),
        "nothing written for an invalid inventory"
    );
    // serde reports the first error per section; the cluster section's raft error above hides
    // its tls error until it is fixed:
    let fixed = inv.replace("heartbeatTik", "heartbeatTick");
    let run = render(t.path(), &fixed, &[]).expect(2);
    assert!(
        run.stderr
            .contains("inventory.yaml:3:11: cluster.raft.electionTick: must be greater than 1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "inventory.yaml:4:3: cluster.tls.certFile: required when cluster.tls.enabled is true"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cluster.tls.keyFile: required"),
        "{}",
        run.stderr
    );
}

#[test]
fn syntax_errors_and_missing_files_are_config_errors() {
    let t = tempfile::tempdir().unwrap();
    let run = render(t.path(), "cluster: { name: x\nnodes: [\n", &[]).expect(2);
    assert!(run.stderr.contains("inventory.yaml:"), "{}", run.stderr);
    let run = wk_ops(t.path(), &["render", "nope.yaml"]).expect(2);
    assert!(
        run.stderr.contains("cannot read inventory nope.yaml"),
        "{}",
        run.stderr
    );
    let run = render(t.path(), "", &[]).expect(2);
    assert!(
        run.stderr.contains("the inventory is empty"),
        "{}",
        run.stderr
    );
    let run = render(t.path(), "- just\n- a list\n", &[]).expect(2);
    assert!(
        run.stderr.contains("must be a mapping of sections"),
        "{}",
        run.stderr
    );
    let run = render(t.path(), "cluster: { name: x }\nnodes: []\nextra: 1\n", &[]).expect(2);
    assert!(
        run.stderr
            .contains("inventory.yaml:3:1: extra: unknown key `extra`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nodes: at least one node is required"),
        "{}",
        run.stderr
    );
    wk_ops(t.path(), &["render"]).expect(2);
    wk_ops(t.path(), &["--help"]).expect(0);
}

#[test]
fn inline_secrets_are_refused_and_none_reach_the_output() {
    let t = tempfile::tempdir().unwrap();
    let inv = minimal_inventory("").replace(
        "cluster: { name: test }",
        "cluster: { name: test, managerToken: s3cret, auth: { enabled: true, token: s3cret } }",
    );
    let run = render(t.path(), &inv, &[]).expect(2);
    assert!(
        run.stderr
            .contains("cluster.managerToken: secrets are not accepted"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("cluster.managerTokenFile"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("cluster.auth.token: secrets are not accepted"),
        "{}",
        run.stderr
    );

    render(
        t.path(),
        &std::fs::read_to_string(example_inventory()).unwrap(),
        &[],
    )
    .expect(0);
    for f in files_under(&t.path().join("out")) {
        let text = read(&t.path().join("out"), &f);
        assert!(!text.contains("managerToken:"), "{f} inlines managerToken");
        assert!(
            text.contains("wukongim") || text.contains("WuKongIM"),
            "{f}"
        );
    }
    assert!(read(&t.path().join("out"), "nodes/1001/wk.yaml")
        .contains("managerTokenFile: \"/etc/wukongim/manager-token\""));
}

#[test]
fn even_voter_count_is_a_warning_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let inv = minimal_inventory("  - { id: 4, host: 10.0.0.4 }\n");
    let run = render(t.path(), &inv, &[]).expect(0);
    assert!(
        run.stderr.contains("warning: inventory.yaml:2:1: nodes: 4 voters: an even number tolerates no more failures than 3"),
        "{}",
        run.stderr
    );
}

#[test]
fn joining_nodes_are_left_out_of_the_others_init_nodes() {
    let t = tempfile::tempdir().unwrap();
    let inv = minimal_inventory(
        "  - { id: 4, host: 10.0.0.4, joins: true }\n  - { id: 5, host: 10.0.0.5, joins: true }\n",
    );
    // Three forming voters: no even-count warning although the inventory lists four or five.
    let run = render(t.path(), &inv, &[]).expect(0);
    assert!(!run.stderr.contains("even number"), "{}", run.stderr);
    let init = |id: u64| -> Vec<String> {
        let text = read(&t.path().join("out"), &format!("nodes/{id}/wk.yaml"));
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        v["cluster"]["initNodes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    let forming = ["1@10.0.0.1:11110", "2@10.0.0.2:11110", "3@10.0.0.3:11110"];
    for id in 1..=3 {
        assert_eq!(init(id), forming, "node {id}");
    }
    // A joining node lists the forming nodes and itself (the server wants its own entry).
    let mut four = forming.map(String::from).to_vec();
    four.push("4@10.0.0.4:11110".into());
    assert_eq!(init(4), four);
    assert_eq!(init(5)[3], "5@10.0.0.5:11110");
    assert_eq!(init(5).len(), 4);

    // A joining node with the smallest id would initialize a cluster of its own: refused.
    let small = "cluster: { name: test }\nnodes:\n  - { id: 2, host: 10.0.0.2 }\n  - { id: 1, host: 10.0.0.1, joins: true }\n";
    let run = render(t.path(), small, &[]).expect(2);
    assert!(
        run.stderr.contains("nodes[1].joins")
            && run.stderr.contains("give joining nodes larger ids"),
        "{}",
        run.stderr
    );
    let all = "cluster: { name: test }\nnodes:\n  - { id: 1, host: 10.0.0.1, joins: true }\n";
    let run = render(t.path(), all, &[]).expect(2);
    assert!(
        run.stderr
            .contains("at least one node must form the cluster"),
        "{}",
        run.stderr
    );
}

#[test]
fn output_is_deterministic() {
    let t = tempfile::tempdir().unwrap();
    let inv = std::fs::read_to_string(example_inventory()).unwrap();
    write(t.path(), "inventory.yaml", &inv);
    wk_ops(t.path(), &["render", "inventory.yaml", "--out", "a"]).expect(0);
    wk_ops(t.path(), &["render", "inventory.yaml", "--out", "b"]).expect(0);
    let a = files_under(&t.path().join("a"));
    assert_eq!(a, files_under(&t.path().join("b")));
    for f in &a {
        assert_eq!(
            read(&t.path().join("a"), f),
            read(&t.path().join("b"), f),
            "{f}"
        );
    }
}

#[test]
fn template_overrides_replace_single_templates() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "tpl/grafana/wukongim-dashboard.json.j2",
        "{\"title\": {{ cluster.name | json }}}\n",
    );
    render(t.path(), &minimal_inventory(""), &["--templates", "tpl"]).expect(0);
    assert_eq!(
        read(t.path(), "out/grafana/wukongim-dashboard.json"),
        "{\"title\": \"test\"}\n"
    );
    assert!(
        read(t.path(), "out/nodes/1/wk.yaml").contains("nodeId: 1"),
        "others stay built in"
    );

    // Strict undefined: a misspelt variable is an error naming the template file and line.
    write(
        t.path(),
        "tpl/grafana/wukongim-dashboard.json.j2",
        "line one\n{{ cluster.nmae }}\n",
    );
    let run = render(t.path(), &minimal_inventory(""), &["--templates", "tpl"]).expect(2);
    assert!(
        run.stderr
            .contains("tpl/grafana/wukongim-dashboard.json.j2:2"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("undefined"), "{}", run.stderr);

    write(
        t.path(),
        "tpl/grafana/wukongim-dashboard.json.j2",
        "{% if %}\n",
    );
    let run = render(t.path(), &minimal_inventory(""), &["--templates", "tpl"]).expect(2);
    assert!(run.stderr.contains("syntax error"), "{}", run.stderr);

    std::fs::remove_file(t.path().join("tpl/grafana/wukongim-dashboard.json.j2")).unwrap();
    write(t.path(), "tpl/nginx/ngnix.conf.j2", "typo\n");
    let run = render(t.path(), &minimal_inventory(""), &["--templates", "tpl"]).expect(2);
    assert!(
        run.stderr.contains("unknown template nginx/ngnix.conf.j2"),
        "{}",
        run.stderr
    );
    let run = render(
        t.path(),
        &minimal_inventory(""),
        &["--templates", "missing-dir"],
    )
    .expect(2);
    assert!(
        run.stderr
            .contains("cannot read template directory missing-dir"),
        "{}",
        run.stderr
    );
}

#[test]
fn written_files_are_world_readable_and_leave_no_temporaries() {
    let t = tempfile::tempdir().unwrap();
    render(t.path(), &minimal_inventory(""), &[]).expect(0);
    render(
        t.path(),
        &minimal_inventory("defaults: { rootDir: /data/wk }\n"),
        &[],
    )
    .expect(0);
    for f in files_under(&t.path().join("out")) {
        assert!(!f.contains(".wk-ops-"), "temporary file left: {f}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(t.path().join("out").join(&f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{f}");
        }
    }
}
