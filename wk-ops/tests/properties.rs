//! Properties of the inventory → files function: random valid inventories load and render
//! (deterministically, with consistent node files); random garbage, and valid inventories
//! with random damage, give errors — never panics.

use proptest::prelude::*;
use serde_json::{json, Value};
use wk_ops::inventory;
use wk_ops::render::{self, Kind, Templates};

/// A valid inventory as JSON (YAML is a superset), with `n` nodes.
fn valid_inventory() -> impl Strategy<Value = (Value, usize)> {
    let raft = (
        prop_oneof![
            Just(json!(1)),
            Just(json!(2)),
            Just(json!("100ms")),
            Just(json!("250ms"))
        ],
        2u32..30,
        proptest::option::of(prop_oneof![
            Just(json!(1048576)),
            Just(json!("2MB")),
            Just(json!("512KiB"))
        ]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![Just("5ms"), Just("1s"), Just("1.5s")]),
        proptest::option::of(1u32..1000),
    );
    (
        "[a-z][a-z0-9-]{0,20}",
        prop::collection::btree_set(1u64..(1 << 53), 1..8),
        prop::collection::vec(0usize..3, 8),
        raft,
        any::<bool>(),
        proptest::option::of(prop::sample::subsequence(vec!["nginx", "haproxy"], 1..=2)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, ids, host_pick, raft, tls, lb, alerts, backup)| {
            let hosts = ["10.0.0.1", "node-b.example.com", "fd00::3"];
            let nodes: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let base = 20000 + 5 * i as u64;
                    json!({
                        "id": id,
                        "host": hosts[host_pick[i]],
                        "ports": { "cluster": base, "tcp": base + 1, "ws": base + 2, "api": base + 3, "metrics": base + 4 }
                    })
                })
                .collect();
            let (hb, et, size, quorum, batch, workers) = raft;
            let mut r = json!({ "heartbeatTick": hb, "electionTick": et });
            if let Some(s) = size { r["maxSizePerMsg"] = s; }
            if let Some(q) = quorum { r["checkQuorum"] = json!(q); }
            if let Some(b) = batch { r["batchTimeout"] = json!(b); }
            if let Some(w) = workers { r["workerCount"] = json!(w); }
            let mut cluster = json!({ "name": name, "raft": r });
            if tls {
                cluster["tls"] = json!({ "enabled": true, "certFile": "/c.crt", "keyFile": "/c.key" });
            }
            let mut inv = json!({ "cluster": cluster, "nodes": nodes });
            if let Some(kinds) = lb {
                inv["loadBalancer"] = json!({ "kinds": kinds, "listen": { "api": 80, "ws": 8080, "tcp": 9100 } });
            }
            if alerts {
                inv["alerts"] = json!({ "email": { "to": ["ops@example.com"], "from": "wk@example.com", "smtp": { "host": "localhost" } } });
            }
            if backup {
                inv["backup"] = json!({ "dir": "/backup", "keep": { "last": 1 } });
            }
            let n = ids.len();
            (inv, n)
        })
}

fn render_all(src: &str) -> Result<Vec<render::RenderedFile>, String> {
    let loaded = inventory::parse(src, "inventory.yaml").map_err(|e| e.to_string())?;
    let templates = Templates::embedded().map_err(|e| e.to_string())?;
    render::render(&loaded.inventory, &templates, &[]).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn valid_inventories_render((inv, n) in valid_inventory()) {
        let src = serde_yaml::to_string(&inv).unwrap();
        let files = render_all(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
        let nodes: Vec<_> = files.iter().filter(|f| f.kind == Kind::Nodes).collect();
        prop_assert_eq!(nodes.len(), n);
        for f in &nodes {
            let v: serde_yaml::Value = serde_yaml::from_str(&f.contents)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}\n{}", f.path, f.contents)))?;
            let id = f.path.split('/').nth(1).unwrap();
            prop_assert_eq!(v["cluster"]["nodeId"].as_u64().map(|i| i.to_string()), Some(id.to_string()));
            prop_assert_eq!(v["cluster"]["initNodes"].as_sequence().map(Vec::len), Some(n));
        }
        for f in files.iter().filter(|f| f.path.ends_with(".yml") || f.path.ends_with(".yaml")) {
            prop_assert!(serde_yaml::from_str::<serde_yaml::Value>(&f.contents).is_ok(), "{} is not YAML", f.path);
        }
        let dash = files.iter().find(|f| f.kind == Kind::Grafana).unwrap();
        prop_assert!(serde_json::from_str::<Value>(&dash.contents).is_ok());
        prop_assert_eq!(render_all(&src).unwrap(), files, "deterministic");
    }

    #[test]
    fn garbage_never_panics(src in ".{0,200}") {
        let _ = render_all(&src);
    }

    #[test]
    fn yamlish_garbage_never_panics(tokens in prop::collection::vec(
        prop_oneof![
            Just("cluster:"), Just("nodes:"), Just("\n"), Just("  "), Just("- "), Just("{"), Just("}"),
            Just("["), Just("]"), Just(","), Just("id: 1"), Just("host: h"), Just("name: x"), Just("&a "),
            Just("*a"), Just("<<: *a"), Just("!!str "), Just("\"q"), Just(": "), Just("? "), Just("---\n"),
            Just("loadBalancer: { kinds: [nginx] }"), Just("99999999999999999999"), Just("-1"), Just("~"),
        ],
        0..60,
    )) {
        let _ = render_all(&tokens.concat());
    }

    #[test]
    fn damaged_inventories_error_cleanly(
        (inv, _) in valid_inventory(),
        path_seed in any::<u64>(),
        damage in 0u8..4,
        junk in prop_oneof![Just(json!(null)), Just(json!(-1)), Just(json!("x y;")), Just(json!([1, 2])), Just(json!({"k": 1})), Just(json!(true)), Just(json!(1e300))],
    ) {
        let mut inv = inv;
        let mut leaves = Vec::new();
        collect_paths(&inv, &mut Vec::new(), &mut leaves);
        let target = leaves[(path_seed as usize) % leaves.len()].clone();
        apply_damage(&mut inv, &target, damage, junk);
        let src = serde_yaml::to_string(&inv).unwrap();
        match inventory::parse(&src, "inventory.yaml") {
            Ok(loaded) => {
                let templates = Templates::embedded().unwrap();
                prop_assert!(render::render(&loaded.inventory, &templates, &[]).is_ok(), "{src}");
            }
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.starts_with("invalid inventory inventory.yaml ("), "{text}");
                if let inventory::InventoryError::Invalid(i) = &e {
                    prop_assert!(!i.errors.is_empty());
                    prop_assert!(i.errors.iter().all(|p| !p.message.is_empty()));
                }
            }
        }
    }
}

/// Every path (object keys and array indexes) in `v`.
fn collect_paths(v: &Value, here: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(json!(k));
                collect_paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(json!(i));
                collect_paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

/// Replaces, removes, renames or wraps the value at `path`.
fn apply_damage(root: &mut Value, path: &[Value], damage: u8, junk: Value) {
    let Some((last, parents)) = path.split_last() else {
        *root = junk;
        return;
    };
    let mut v = root;
    for p in parents {
        v = match p {
            Value::String(k) => &mut v[k.as_str()],
            Value::Number(i) => &mut v[i.as_u64().unwrap() as usize],
            _ => unreachable!(),
        };
    }
    match (v, last) {
        (Value::Object(m), Value::String(k)) => match damage {
            0 => {
                m.insert(k.clone(), junk);
            }
            1 => {
                m.remove(k);
            }
            2 => {
                let old = m.remove(k).unwrap_or(Value::Null);
                m.insert(format!("{k}x"), old);
            }
            _ => {
                let old = m.remove(k).unwrap_or(Value::Null);
                m.insert(k.clone(), json!([old]));
            }
        },
        (Value::Array(a), Value::Number(i)) => {
            let i = i.as_u64().unwrap() as usize;
            match damage {
                0 => a[i] = junk,
                1 => {
                    a.remove(i);
                }
                2 => {
                    let dup = a[i].clone();
                    a.push(dup);
                }
                _ => a[i] = json!([a[i].clone()]),
            }
        }
        _ => {}
    }
}
