//! Waiting for a condition on the fleet with a deadline: the one polling loop of wk-ops'
//! actions (rolling restart, scaling). The condition says why it is not met yet, and that
//! last reason is what the operator sees when the deadline passes.

use std::future::Future;
use std::time::Duration;

/// Polls `check` every `every` until it returns Ok or `timeout` passes; then the last reason.
pub async fn until<T, F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(reason) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("still not after {timeout:?}: {reason}"))
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_the_last_reason_at_the_deadline() {
        let mut n = 0;
        let r: Result<(), String> =
            until(Duration::from_millis(50), Duration::from_millis(5), || {
                n += 1;
                let reason = format!("try {n}");
                async move { Err(reason) }
            })
            .await;
        let e = r.unwrap_err();
        assert!(e.contains(&format!("try {n}")), "{e}");
        assert!(n > 1);
    }
}
