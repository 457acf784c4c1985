//! Property tests: arbitrary YAML documents and arbitrary WK_* environments never panic the
//! loader; they load or produce a non-empty problem list.

use proptest::prelude::*;
use wukongim::config;

fn yaml_value() -> impl Strategy<Value = serde_yaml::Value> {
    let leaf = prop_oneof![
        Just(serde_yaml::Value::Null),
        any::<bool>().prop_map(serde_yaml::Value::Bool),
        any::<i64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        any::<f64>().prop_map(|n| serde_yaml::Value::Number(n.into())),
        "[ -~]{0,12}".prop_map(serde_yaml::Value::String),
        prop_oneof![
            Just("10ms"),
            Just("5s"),
            Just("2GB"),
            Just("1@a:1"),
            Just("release")
        ]
        .prop_map(|s| serde_yaml::Value::String(s.into())),
    ];
    let keys = prop_oneof![
        Just("cluster"),
        Just("nodeId"),
        Just("initNodes"),
        Just("heartbeatTick"),
        Just("electionTick"),
        Just("tls"),
        Just("enabled"),
        Just("external"),
        Just("ip"),
        Just("rootDir"),
        Just("mode"),
        Just("dialTimeout"),
        Just("maxMemoryUsage"),
        Just("manager"),
        Just("addr"),
        Just("auth"),
        Just("bogus"),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_yaml::Value::Sequence),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                let mut m = serde_yaml::Mapping::new();
                for (k, v) in kv {
                    m.insert(serde_yaml::Value::String(k.into()), v);
                }
                serde_yaml::Value::Mapping(m)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn random_yaml_never_panics(doc in yaml_value()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wk.yaml");
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        match config::load(Some(&path), Vec::<(String, String)>::new()) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.problems.is_empty()),
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wk.yaml");
        std::fs::write(&path, &bytes).unwrap();
        let _ = config::load(Some(&path), Vec::<(String, String)>::new());
    }

}

proptest! {
    // No files: cheap cases, many of them.
    #![proptest_config(ProptestConfig { cases: 5000, .. ProptestConfig::default() })]

    #[test]
    fn random_env_never_panics(vars in prop::collection::vec(
        (prop_oneof![Just("WK_CLUSTER_NODEID"), Just("WK_CLUSTER_INITNODES"), Just("WK_EXTERNAL_IP"),
                     Just("WK_CLUSTER_HEARTBEATTICK"), Just("WK_CLUSTER_TLS_ENABLED"), Just("WK_MODE"),
                     Just("WK_CLUSTER_MAXMEMORYUSAGE"), Just("WK_X"), Just("WK_CLUSTER_TLS"),
                     Just("WK_CONN_MAXCONNECTIONS"), Just("WK_CONN_MAXPENDINGBYTES"),
                     Just("WK_CLUSTER_AUTH_TOKENROTATIONINTERVAL"), Just("WK_TOKENAUTHON"),
                     Just("WK_MANAGERTOKENFILE"), Just("WK_CLUSTER_SERVERADDR")],
         "[ -~]{0,16}"), 0..6)) {
        let env = vars.into_iter().map(|(k, v)| (k.to_string(), v));
        match config::load(None, env) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.problems.is_empty()),
        }
    }
}
