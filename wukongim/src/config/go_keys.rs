//! Configuration keys of the Go WuKongIM server (its `internal/options/options.go`, v2.2.x) that
//! this server does not implement. A file written for Go starts: each such key found is removed
//! before typing and named once as unsupported (a WARN at startup, a line in `--check`). Keys
//! that neither server knows are left in place, so the typed load still refuses them by name.

use figment::value::Value;

/// Go's keys (viper spelling) with no counterpart here. A key names a leaf or a whole subtree
/// (`auth.users` is a list). `webhook.*` is not listed: this server implements webhooks.
pub const UNSUPPORTED: &[&str] = &[
    "agent.webhook.httpAddr",
    "agent.webhook.maxPushCount",
    "auth.kind",
    "auth.on",
    "auth.superToken",
    "auth.users",
    "channel.cacheCount",
    "channel.createIfNoExist",
    "channel.onlineCmdChannelId",
    "channel.subscriberCompressOfCount",
    "cluster.addr",
    "cluster.apiUrl",
    "cluster.channelDestoryAfterIdleTick",
    "cluster.channelReactorSubCount",
    "cluster.channelReplicaCount",
    "cluster.electionIntervalTick",
    "cluster.heartbeatIntervalTick",
    "cluster.pongMaxTick",
    "cluster.reqTimeout",
    "cluster.role",
    "cluster.seed",
    "cluster.slotCount",
    "cluster.slotReactorSubCount",
    "cluster.slotReplicaCount",
    "cluster.tickInterval",
    "connIdleTime",
    "conversation.bytesPerSave",
    "conversation.cacheExpire",
    "conversation.on",
    "conversation.savePoolSize",
    "conversation.syncInterval",
    "conversation.syncOnce",
    "conversation.userMaxCount",
    "conversation.workerNum",
    "conversation.workerScanInterval",
    "coreReactor.channelMessageQueueSize",
    "coreReactor.coreMessageQueueSize",
    "coreReactor.messageQueueMaxMemorySize",
    "customerService.visitorsOn",
    "customerService.visitorsSuffix",
    "dataDir",
    "datasource.addr",
    "datasource.channelInfoOn",
    "db.memTableSize",
    "db.shardNum",
    "db.slotShardNum",
    "deadlockCheck",
    "deliver.deliverWorkerCountPerNode",
    "deliver.deliverrCount",
    "deliver.maxDeliverSizePerNode",
    "deliver.maxRetry",
    "deliveryMsgPoolSize",
    "demo.addr",
    "demo.on",
    "disableCMDMessageSync",
    "disableEncryption",
    "disableJSONRPC",
    "eventPoolSize",
    "external.autoGetExternalIP",
    "external.managerAddr",
    "ginMode",
    "goPool.channelProcess",
    "goPool.userProcess",
    "handlePoolSize",
    "id",
    "jwt.expire",
    "jwt.issuer",
    "jwt.secret",
    "logger.dir",
    "logger.level",
    "logger.lineNum",
    "logger.loki.password",
    "logger.loki.url",
    "logger.loki.username",
    "logger.traceMaxMsgCount",
    "logger.traceOn",
    "managerUID",
    "messageRetry.interval",
    "messageRetry.maxCount",
    "messageRetry.scanInterval",
    "messageRetry.workerCount",
    "migrateStartStep",
    "oldV1Api",
    "plugin.install",
    "plugin.socketPath",
    "plugin.timeout",
    "pprofOn",
    "reactor.channel.deadlineTick",
    "reactor.channel.processIntervalTick",
    "reactor.channel.processPoolSize",
    "reactor.channel.subCount",
    "reactor.channel.tagCheckIntervalTick",
    "reactor.channel.tickInterval",
    "reactor.checkUserLeaderIntervalTick",
    "reactor.stream.idleTimeoutTick",
    "reactor.stream.processIntervalTick",
    "reactor.stream.subCount",
    "reactor.stream.tickInterval",
    "reactor.user.nodePingTick",
    "reactor.user.nodePongTimeoutTick",
    "reactor.user.processIntervalTick",
    "reactor.user.processPoolSize",
    "reactor.user.subCount",
    "reactor.user.tickInterval",
    "streamCache.chunkInactivityTimeout",
    "streamCache.cleanupInterval",
    "streamCache.maxChunksPerStream",
    "streamCache.maxMemorySize",
    "streamCache.maxStreams",
    "streamCache.streamTimeout",
    "stress",
    "tag.expire",
    "timingWheelSize",
    "timingWheelTick",
    "tmpChannel.cacheCount",
    "tmpChannel.suffix",
    "trace.prometheusApiUrl",
    "trace.serviceHostName",
    "trace.serviceName",
    "unitTest",
    "userMsgQueueMaxSize",
    "violent",
    "whitelistOffOfPerson",
    "wssAddr",
    "wssConfig.certFile",
    "wssConfig.keyFile",
];

/// Removes every [`UNSUPPORTED`] key present in `root` (matched without regard to case, as
/// viper does) and returns them as written, in file order of the list. A section left empty by
/// the removal (`datasource:` with only Go keys) is removed too, so it is not reported as unknown.
pub fn take_unsupported(root: &mut Value) -> Vec<String> {
    let mut found = Vec::new();
    for key in UNSUPPORTED {
        let path: Vec<&str> = key.split('.').collect();
        if let Some(written) = remove(root, &path) {
            found.push(written);
        }
    }
    found
}

/// Removes `path` from `v`; returns its dotted name as written in the file.
fn remove(v: &mut Value, path: &[&str]) -> Option<String> {
    let Value::Dict(_, map) = v else {
        return None;
    };
    let (first, rest) = path.split_first()?;
    let written = map.keys().find(|k| k.eq_ignore_ascii_case(first))?.clone();
    if rest.is_empty() {
        map.remove(&written);
        return Some(written);
    }
    let child = map.get_mut(&written)?;
    let inner = remove(child, rest)?;
    // This server's own sections always hold their defaults, so only Go-only ones empty out.
    if matches!(child, Value::Dict(_, m) if m.is_empty()) {
        map.remove(&written);
    }
    Some(format!("{written}.{inner}"))
}

/// The Go key a `WK_*` variable names (`wanted` = the name after `WK_`, lowercase), if any.
pub fn env_key(wanted: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .copied()
        .find(|k| k.replace('.', "_").eq_ignore_ascii_case(wanted))
}

/// The message for one unsupported key.
pub fn message(key: &str) -> String {
    format!(
        "config key {key} is a WuKongIM (Go) setting this server does not support; ignored \
         (see README, configuration)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Yaml};
    use figment::Figment;

    fn value(yaml: &str) -> Value {
        Figment::from(Yaml::string(yaml)).extract().unwrap()
    }

    #[test]
    fn go_keys_are_taken_and_unknown_ones_left() {
        let mut v = value(
            "datasource:\n  addr: http://x\nLogger:\n  dir: /l\n  bogus: 1\n\
             cluster:\n  nodeId: 1\n  slotReplicaCount: 3\nwebhook:\n  httpAddr: http://y\n",
        );
        let found = take_unsupported(&mut v);
        assert_eq!(
            found,
            ["cluster.slotReplicaCount", "datasource.addr", "Logger.dir"]
        );
        let left = serde_json::to_value(&v).unwrap();
        assert_eq!(
            left,
            serde_json::json!({
                "Logger": {"bogus": 1},
                "cluster": {"nodeId": 1},
                "webhook": {"httpAddr": "http://y"},
            })
        );
    }

    #[test]
    fn environment_names_map_to_go_keys() {
        assert_eq!(env_key("datasource_addr"), Some("datasource.addr"));
        assert_eq!(
            env_key("cluster_slotreplicacount"),
            Some("cluster.slotReplicaCount")
        );
        assert_eq!(env_key("datasource_adr"), None);
    }

    #[test]
    fn the_list_has_no_duplicates_and_no_webhook_keys() {
        let mut seen = std::collections::HashSet::new();
        for k in UNSUPPORTED {
            assert!(seen.insert(k.to_ascii_lowercase()), "{k} twice");
            assert!(!k.starts_with("webhook."), "{k}");
        }
    }
}
