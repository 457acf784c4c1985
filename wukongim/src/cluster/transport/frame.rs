//! Length-prefixed frames with a size cap checked before anything is allocated.

use super::RpcError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes one frame made of `parts` (concatenated).
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, parts: &[&[u8]]) -> Result<(), RpcError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len32 = u32::try_from(len).map_err(|_| RpcError::FrameTooLarge(len))?;
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&len32.to_be_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame of at most `max` bytes.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, RpcError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(RpcError::FrameTooLarge(len));
    }
    // Grow as bytes arrive rather than trusting the announced length up front.
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    let mut limited = r.take(len as u64);
    limited.read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(RpcError::Closed);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn round_trip_and_cap() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write(&mut a, &[b"ab", b"cd"]).await.unwrap();
        assert_eq!(read(&mut b, 10).await.unwrap(), b"abcd");
        write(&mut a, &[&[0u8; 100]]).await.unwrap();
        assert!(matches!(
            read(&mut b, 10).await,
            Err(RpcError::FrameTooLarge(100))
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut r = &bytes[..];
                while read(&mut r, 1024).await.is_ok() {}
            });
        }
    }
}
