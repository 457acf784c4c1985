//! Connection handshake: a magic/version check (so stray clients such as an HTTP request are
//! refused), then, when a cluster token is configured, mutual challenge–response with
//! HMAC-SHA256 over both nonces — the token itself never crosses the wire.

use super::{frame, RpcError};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};

const MAGIC: &[u8; 8] = b"WKRPC\x00\x01\x00";
const NONCE: usize = 16;
const MAX_HANDSHAKE: usize = 256;

fn mac(token: &[u8], label: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token).expect("hmac takes any key length");
    m.update(label);
    m.update(a);
    m.update(b);
    m.finalize().into_bytes().to_vec()
}

fn verify(token: &[u8], label: &[u8], a: &[u8], b: &[u8], tag: &[u8]) -> bool {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token).expect("hmac takes any key length");
    m.update(label);
    m.update(a);
    m.update(b);
    m.verify_slice(tag).is_ok()
}

fn nonce() -> [u8; NONCE] {
    let mut n = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Client side: hello, then prove and check the token.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&[u8]>,
) -> Result<(), RpcError> {
    let cn = nonce();
    frame::write(s, &[MAGIC, &cn]).await?;
    let hello = frame::read(s, MAX_HANDSHAKE).await?;
    if hello.len() != MAGIC.len() + NONCE + 1 || &hello[..MAGIC.len()] != MAGIC {
        return Err(RpcError::Auth(
            "peer does not speak the wukongim cluster protocol".into(),
        ));
    }
    let sn = &hello[MAGIC.len()..MAGIC.len() + NONCE];
    let wants_auth = hello[MAGIC.len() + NONCE] == 1;
    match (wants_auth, token) {
        (false, _) => Ok(()),
        (true, None) => Err(RpcError::Auth(
            "peer requires a cluster token and none is configured".into(),
        )),
        (true, Some(t)) => {
            frame::write(s, &[&mac(t, b"client", sn, &cn)]).await?;
            let proof = frame::read(s, MAX_HANDSHAKE)
                .await
                .map_err(|_| RpcError::Auth("peer refused our cluster token".into()))?;
            if verify(t, b"server", &cn, sn, &proof) {
                Ok(())
            } else {
                Err(RpcError::Auth(
                    "peer could not prove it holds the cluster token".into(),
                ))
            }
        }
    }
}

/// Server side: check the hello and, with a token, the client's proof; prove back.
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Option<&[u8]>,
) -> Result<(), RpcError> {
    let hello = frame::read(s, MAX_HANDSHAKE).await?;
    if hello.len() != MAGIC.len() + NONCE || &hello[..MAGIC.len()] != MAGIC {
        return Err(RpcError::Auth(
            "client does not speak the wukongim cluster protocol".into(),
        ));
    }
    let cn = &hello[MAGIC.len()..];
    let sn = nonce();
    frame::write(s, &[MAGIC, &sn, &[token.is_some() as u8]]).await?;
    if let Some(t) = token {
        let proof = frame::read(s, MAX_HANDSHAKE).await?;
        if !verify(t, b"client", &sn, cn, &proof) {
            return Err(RpcError::Auth(
                "client presented a wrong cluster token".into(),
            ));
        }
        frame::write(s, &[&mac(t, b"server", cn, &sn)]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(
        ct: Option<&'static [u8]>,
        st: Option<&'static [u8]>,
    ) -> (Result<(), RpcError>, Result<(), RpcError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let c = tokio::spawn(async move { client(&mut a, ct).await });
        let s = tokio::spawn(async move { server(&mut b, st).await });
        (c.await.unwrap(), s.await.unwrap())
    }

    #[tokio::test]
    async fn tokens_must_match() {
        let (c, s) = pair(Some(b"k"), Some(b"k")).await;
        assert!(c.is_ok() && s.is_ok());
        let (c, s) = pair(Some(b"k"), Some(b"other")).await;
        assert!(matches!(s, Err(RpcError::Auth(_))));
        assert!(matches!(c, Err(RpcError::Auth(_))));
        let (c, _) = pair(None, Some(b"k")).await;
        assert!(matches!(c, Err(RpcError::Auth(_))));
        let (c, s) = pair(None, None).await;
        assert!(c.is_ok() && s.is_ok());
    }
}
