//! The connection handshake (see the module docs of [`super`] for the bytes): a magic/version
//! check so that anything but a cluster peer — an HTTP request, a TLS client on a plain port — is
//! refused at once, then, with a cluster token, mutual HMAC-SHA256 challenge–response over fresh
//! nonces from both sides. The token never crosses the wire and a recorded exchange cannot be
//! replayed.

use super::RpcError;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8; 5] = b"WKRPC";
/// Wire protocol version.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// Handshake messages are tiny; a longer length prefix means "not one of us".
const MAX_MESSAGE: usize = 64;
const CLIENT_LABEL: &[u8] = b"wukongim-rpc/1 client";
const SERVER_LABEL: &[u8] = b"wukongim-rpc/1 server";
const ACCEPTED: u8 = 0;
const REJECTED: u8 = 1;

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn keyed(token: &[u8], label: &[u8], a: &[u8], b: &[u8]) -> Result<Hmac<Sha256>, RpcError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token)
        .map_err(|e| RpcError::Auth(format!("cluster token unusable as an HMAC key: {e}")))?;
    m.update(label);
    m.update(a);
    m.update(b);
    Ok(m)
}

fn proof(token: &[u8], label: &[u8], a: &[u8], b: &[u8]) -> Result<Vec<u8>, RpcError> {
    Ok(keyed(token, label, a, b)?.finalize().into_bytes().to_vec())
}

/// Constant-time check of a proof.
fn verify(token: &[u8], label: &[u8], a: &[u8], b: &[u8], tag: &[u8]) -> bool {
    keyed(token, label, a, b).is_ok_and(|m| m.verify_slice(tag).is_ok())
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, parts: &[&[u8]]) -> Result<(), RpcError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
    s.write_all(&buf).await?;
    s.flush().await?;
    Ok(())
}

/// Reads one handshake message. `None` when the peer closed the connection first.
async fn recv<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<Vec<u8>>, RpcError> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(RpcError::Protocol(
            "not a wukongim cluster RPC peer (unexpected bytes in the handshake; \
             check that both sides agree on cluster.tls.enabled)"
                .into(),
        ));
    }
    let mut buf = vec![0u8; len];
    match s.read_exact(&mut buf).await {
        Ok(_) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Client side. Errors are not yet tagged with the peer address.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&[u8]>,
) -> Result<(), RpcError> {
    let cn = nonce();
    send(s, &[MAGIC, &[VERSION], &cn]).await?;
    let hello = recv(s).await?.ok_or_else(|| {
        RpcError::Protocol(
            "connection closed during the handshake (is cluster.tls.enabled the same on both \
             sides?)"
                .into(),
        )
    })?;
    if hello.len() < MAGIC.len() + 1 || &hello[..MAGIC.len()] != MAGIC {
        return Err(RpcError::Protocol(
            "not a wukongim cluster RPC peer (bad magic)".into(),
        ));
    }
    let version = hello[MAGIC.len()];
    if version != VERSION || hello.len() != MAGIC.len() + 2 + NONCE_LEN {
        return Err(RpcError::Protocol(format!(
            "peer speaks cluster RPC version {version}, this node speaks {VERSION}"
        )));
    }
    let wants_token = hello[MAGIC.len() + 1];
    let sn = &hello[MAGIC.len() + 2..];
    match (wants_token, token) {
        (0, None) => Ok(()),
        (0, Some(_)) => Err(RpcError::Auth(
            "peer does not ask for the cluster token (cluster.auth disabled there); refusing an \
             unauthenticated peer"
                .into(),
        )),
        (1, None) => Err(RpcError::Auth(
            "peer requires the cluster token and cluster.auth is disabled here".into(),
        )),
        (1, Some(t)) => {
            send(s, &[&proof(t, CLIENT_LABEL, sn, &cn)?]).await?;
            let answer = recv(s).await?.unwrap_or_default();
            match answer.split_first() {
                Some((&ACCEPTED, tag)) if verify(t, SERVER_LABEL, &cn, sn, tag) => Ok(()),
                Some((&ACCEPTED, _)) => Err(RpcError::Auth(
                    "peer could not prove it holds the cluster token".into(),
                )),
                _ => Err(RpcError::Auth(
                    "peer rejected our cluster token (tokenFile differs?)".into(),
                )),
            }
        }
        (other, _) => Err(RpcError::Protocol(format!(
            "unknown authentication mode {other} in the peer's hello"
        ))),
    }
}

/// Server side: `tokens` are the cluster tokens accepted (current first, then the previous one
/// after a reload); empty = no authentication. On a wrong token the client is told so before
/// the error is returned.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    tokens: &[Vec<u8>],
) -> Result<(), RpcError> {
    let hello = recv(s)
        .await?
        .ok_or_else(|| RpcError::Protocol("connection closed before the handshake".into()))?;
    if hello.len() < MAGIC.len() + 1 || &hello[..MAGIC.len()] != MAGIC {
        return Err(RpcError::Protocol(
            "not a wukongim cluster RPC client (bad magic)".into(),
        ));
    }
    let sn = nonce();
    send(s, &[MAGIC, &[VERSION], &[!tokens.is_empty() as u8], &sn]).await?;
    let version = hello[MAGIC.len()];
    if version != VERSION || hello.len() != MAGIC.len() + 1 + NONCE_LEN {
        return Err(RpcError::Protocol(format!(
            "client speaks cluster RPC version {version}, this node speaks {VERSION}"
        )));
    }
    let cn = &hello[MAGIC.len() + 1..];
    if tokens.is_empty() {
        return Ok(());
    }
    let tag = recv(s).await?.ok_or_else(|| {
        RpcError::Auth("client closed the connection instead of proving the cluster token".into())
    })?;
    // Every token is checked (constant time each, no early exit); the first that matches wins.
    let matched = tokens.iter().fold(None, |found, t| {
        let ok = tag.len() == MAC_LEN && verify(t, CLIENT_LABEL, &sn, cn, &tag);
        found.or(ok.then_some(t))
    });
    let Some(t) = matched else {
        // Best effort: the client learns why before the connection closes.
        let _ = send(s, &[&[REJECTED]]).await;
        return Err(RpcError::Auth(
            "client presented a wrong cluster token".into(),
        ));
    };
    send(s, &[&[ACCEPTED], &proof(t, SERVER_LABEL, cn, &sn)?]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    async fn pair(
        ct: Option<&'static [u8]>,
        st: Option<&'static [u8]>,
    ) -> (Result<(), RpcError>, Result<(), RpcError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let c = tokio::spawn(async move { client(&mut a, ct).await });
        let st: Vec<Vec<u8>> = st.map(|t| vec![t.to_vec()]).unwrap_or_default();
        let s = tokio::spawn(async move { server(&mut b, &st).await });
        (c.await.unwrap(), s.await.unwrap())
    }

    #[tokio::test]
    async fn tokens_must_match_on_both_sides() {
        let (c, s) = pair(Some(b"k"), Some(b"k")).await;
        assert!(c.is_ok() && s.is_ok(), "{c:?} {s:?}");
        let (c, s) = pair(Some(b"k"), Some(b"other")).await;
        assert!(matches!(s, Err(RpcError::Auth(_))), "{s:?}");
        assert!(matches!(c, Err(RpcError::Auth(_))), "{c:?}");
        let (c, _) = pair(None, Some(b"k")).await;
        assert!(matches!(c, Err(RpcError::Auth(_))), "{c:?}");
        let (c, _) = pair(Some(b"k"), None).await;
        assert!(matches!(c, Err(RpcError::Auth(_))), "{c:?}");
        let (c, s) = pair(None, None).await;
        assert!(c.is_ok() && s.is_ok());
    }

    #[tokio::test]
    async fn an_http_request_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(
            server(&mut b, &[]).await,
            Err(RpcError::Protocol(_))
        ));
    }

    thread_local! {
        static RT: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }

    /// A well-formed client hello (magic, version, nonce) so that fuzzing reaches the proof.
    fn hello_then(rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 38];
        v.extend_from_slice(MAGIC);
        v.push(VERSION);
        v.extend_from_slice(&[9u8; NONCE_LEN]);
        v.extend_from_slice(rest);
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        #[test]
        fn random_handshake_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            RT.with(|rt| rt.block_on(async {
                // Past a valid hello, garbage proofs are refused, never accepted.
                let (mut a, mut b) = tokio::io::duplex(4096);
                a.write_all(&hello_then(&bytes)).await.unwrap();
                drop(a);
                assert!(server(&mut b, &[b"token".to_vec()]).await.is_err());
                let (mut a, mut b) = tokio::io::duplex(4096);
                a.write_all(&bytes).await.unwrap();
                drop(a);
                let _ = server(&mut b, &[b"token".to_vec()]).await;
                let (mut a, mut b) = tokio::io::duplex(4096);
                a.write_all(&bytes).await.unwrap();
                drop(a);
                let _ = client(&mut b, Some(b"token")).await;
            }));
        }
    }
}
