//! openraft's storage conformance suite run against our redb log store and state machine.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use std::sync::Arc;
use wukongim::cluster::log_store::LogStore;
use wukongim::cluster::state_machine::StateMachine;
use wukongim::cluster::types::TypeConfig;
use wukongim::core::Hub;
use wukongim::store::Store;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let (tx, _rx) = tokio::sync::watch::channel(0u64);
        let sm = StateMachine::new(
            store.clone(),
            Hub::new(),
            None,
            Arc::new(tx),
            dir.path().join("snapshots"),
        )
        .expect("state machine");
        Ok((dir, LogStore::new(store), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_passes_the_openraft_storage_suite() {
    Suite::test_all(Builder).await.expect("storage conformance");
}
