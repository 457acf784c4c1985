//! Session encryption of the WuKongIM protocol: the Curve25519 handshake carried by
//! CONNECT/CONNACK, AES-128-CBC payload encryption, and the `msgKey` integrity tag of SEND and
//! RECV. Server side for the gateway, client side for our Rust test clients.
//!
//! Recipe, verified line by line in `wukongimjssdk` 1.0.4 (`connect_manager.js` `onPacket`,
//! `security.js` `encryption/encryption2/decryption`, `proto.js` `encodeSend` and the
//! `veritifyString`s, `chat_manager.js` `onPacket`) and in Go `pkg/protocol/wkprotoenc`:
//! 1. The client sends base64(Curve25519 public key) as CONNECT.clientKey.
//! 2. The server answers CONNACK.serverKey = base64(its fresh X25519 public key) and
//!    CONNACK.salt = 16 random characters from `[A-Za-z0-9]`.
//! 3. `shared = X25519(own secret, peer public)`; `aes_key` = the first 16 characters of the
//!    lowercase hex MD5 of the *base64 text* of `shared`, used as 16 ASCII bytes; `iv` = the first
//!    16 bytes of the salt (the SDK: `salt.substring(0, 16)` when longer, else the salt).
//! 4. A payload on the wire is `base64(AES-128-CBC-PKCS7(plain))`, as ASCII bytes.
//! 5. `msgKey = hex(MD5(base64(AES-128-CBC-PKCS7(verify))))` — MD5 is over the base64 *text*.
//!    SEND: `verify = clientSeq ‖ clientMsgNo ‖ channelID ‖ channelType ‖ payload`;
//!    RECV: `verify = messageID ‖ messageSeq ‖ clientMsgNo ‖ timestamp ‖ fromUID ‖ channelID ‖
//!    channelType ‖ payload`; numbers in decimal, strings as UTF-8, no separators, and `payload`
//!    is the *encrypted* base64 text exactly as it travels. The SDK reads messageID and timestamp
//!    as unsigned (BigNumber / `readInt32` are unsigned there), so they are formatted as u64/u32;
//!    Go formats them signed — identical for every non-negative value.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest, Md5};
use rand::{distributions::Alphanumeric, Rng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};

use super::packet::{RecvPacket, SendPacket};

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// Length of the salt/IV the server generates.
pub const SALT_LEN: usize = 16;

/// Crypto failures; all of them mean "reject this connection/packet".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("public key is not valid standard base64")]
    KeyBase64,
    #[error("public key is {0} bytes, expected 32")]
    KeyLength(usize),
    #[error("key exchange produced an all-zero secret (low-order public key)")]
    WeakKey,
    #[error("salt must be at least 16 bytes, got {0}")]
    SaltTooShort(usize),
    #[error("payload is not valid standard base64")]
    PayloadBase64,
    #[error("payload does not decrypt (bad length or padding)")]
    Decrypt,
    #[error("msgKey does not match the packet")]
    MsgKeyMismatch,
}

fn md5_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let sum = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in sum {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0F) as usize] as char);
    }
    s
}

fn decode_public_key(b64: &str) -> Result<PublicKey, CryptoError> {
    let raw = B64
        .decode(b64.as_bytes())
        .map_err(|_| CryptoError::KeyBase64)?;
    let arr: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::KeyLength(raw.len()))?;
    Ok(PublicKey::from(arr))
}

/// Step 3: derives the session cipher from our secret, the peer's base64 public key and the salt.
fn derive(secret: &StaticSecret, peer_b64: &str, salt: &str) -> Result<SessionCipher, CryptoError> {
    let peer = decode_public_key(peer_b64)?;
    let iv: [u8; 16] = salt
        .as_bytes()
        .get(..SALT_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(CryptoError::SaltTooShort(salt.len()))?;
    let shared = secret.diffie_hellman(&peer);
    if !shared.was_contributory() {
        return Err(CryptoError::WeakKey);
    }
    let hex = md5_hex(B64.encode(shared.as_bytes()).as_bytes());
    let mut aes_key = [0u8; 16];
    aes_key.copy_from_slice(&hex.as_bytes()[..16]);
    Ok(SessionCipher { aes_key, iv })
}

/// The symmetric state of one session. The same key and IV are reused for every payload and
/// msgKey of the session (that is the protocol, not a choice made here).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCipher {
    /// 16 ASCII hex characters.
    pub aes_key: [u8; 16],
    /// The salt's first 16 bytes.
    pub iv: [u8; 16],
}

impl std::fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCipher").finish_non_exhaustive()
    }
}

impl SessionCipher {
    pub fn new(aes_key: [u8; 16], iv: [u8; 16]) -> Self {
        SessionCipher { aes_key, iv }
    }

    /// AES-128-CBC with PKCS7, then standard base64; returns the base64 text as bytes.
    pub fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        let ct = Aes128CbcEnc::new(&self.aes_key.into(), &self.iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        B64.encode(ct).into_bytes()
    }

    /// Inverse of [`encrypt`](Self::encrypt): `text` is base64 (standard alphabet, padded).
    pub fn decrypt(&self, text: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let ct = B64.decode(text).map_err(|_| CryptoError::PayloadBase64)?;
        Aes128CbcDec::new(&self.aes_key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ct)
            .map_err(|_| CryptoError::Decrypt)
    }

    /// `hex(MD5(base64(AES(verify))))`, the common tail of both msgKey recipes.
    pub fn msg_key(&self, verify: &[u8]) -> String {
        md5_hex(&self.encrypt(verify))
    }

    /// msgKey of a SEND whose `payload` is the encrypted text as it travels.
    pub fn send_msg_key(&self, p: &SendPacket) -> String {
        self.msg_key(&send_verify_bytes(p))
    }

    /// msgKey of a RECV whose `payload` is the encrypted text as it travels.
    pub fn recv_msg_key(&self, p: &RecvPacket) -> String {
        self.msg_key(&recv_verify_bytes(p))
    }

    /// Server side of a SEND: checks the msgKey, then returns the decrypted payload. A failure of
    /// either is what the Go server answers with SENDACK reason PayloadDecodeError (9).
    pub fn open_send(&self, p: &SendPacket) -> Result<Vec<u8>, CryptoError> {
        if self.send_msg_key(p) != p.msg_key {
            return Err(CryptoError::MsgKeyMismatch);
        }
        self.decrypt(&p.payload)
    }

    /// Server side of a RECV: replaces the plaintext `payload` by its encrypted text and sets
    /// `msg_key` (call it last: the key covers messageID, messageSeq, timestamp, …).
    pub fn seal_recv(&self, p: &mut RecvPacket) {
        p.payload = self.encrypt(&p.payload).into();
        p.msg_key = self.recv_msg_key(p);
    }

    /// Client side: encrypts a SEND's plaintext payload and sets its msgKey, as the SDK's
    /// `encodeSend` does.
    pub fn seal_send(&self, p: &mut SendPacket) {
        p.payload = self.encrypt(&p.payload).into();
        p.msg_key = self.send_msg_key(p);
    }

    /// Client side: checks a RECV's msgKey (the SDK silently drops mismatches) and decrypts.
    pub fn open_recv(&self, p: &RecvPacket) -> Result<Vec<u8>, CryptoError> {
        if self.recv_msg_key(p) != p.msg_key {
            return Err(CryptoError::MsgKeyMismatch);
        }
        self.decrypt(&p.payload)
    }
}

/// `clientSeq ‖ clientMsgNo ‖ channelID ‖ channelType ‖ payload` (SDK `SendPacket.veritifyString`).
pub fn send_verify_bytes(p: &SendPacket) -> Vec<u8> {
    let mut v =
        Vec::with_capacity(32 + p.client_msg_no.len() + p.channel_id.len() + p.payload.len());
    v.extend_from_slice(p.client_seq.to_string().as_bytes());
    v.extend_from_slice(p.client_msg_no.as_bytes());
    v.extend_from_slice(p.channel_id.as_bytes());
    v.extend_from_slice(p.channel_type.to_string().as_bytes());
    v.extend_from_slice(&p.payload);
    v
}

/// `messageID ‖ messageSeq ‖ clientMsgNo ‖ timestamp ‖ fromUID ‖ channelID ‖ channelType ‖ payload`
/// (SDK `RecvPacket.veritifyString`; messageID and timestamp unsigned, see the module docs).
pub fn recv_verify_bytes(p: &RecvPacket) -> Vec<u8> {
    let mut v = Vec::with_capacity(
        64 + p.client_msg_no.len() + p.from_uid.len() + p.channel_id.len() + p.payload.len(),
    );
    v.extend_from_slice((p.message_id as u64).to_string().as_bytes());
    v.extend_from_slice(p.message_seq.to_string().as_bytes());
    v.extend_from_slice(p.client_msg_no.as_bytes());
    v.extend_from_slice((p.timestamp as u32).to_string().as_bytes());
    v.extend_from_slice(p.from_uid.as_bytes());
    v.extend_from_slice(p.channel_id.as_bytes());
    v.extend_from_slice(p.channel_type.to_string().as_bytes());
    v.extend_from_slice(&p.payload);
    v
}

/// What the server puts in its CONNACK, plus the cipher it keeps for the session.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    /// CONNACK.serverKey: base64 of the server's fresh X25519 public key.
    pub server_key: String,
    /// CONNACK.salt: 16 alphanumeric characters, also the IV.
    pub salt: String,
    pub cipher: SessionCipher,
}

/// Server side of the handshake with a fresh key pair and a fresh random salt.
pub fn server_handshake(client_key_b64: &str) -> Result<ServerHandshake, CryptoError> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let salt: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(SALT_LEN)
        .map(char::from)
        .collect();
    server_handshake_with(client_key_b64, secret, &salt)
}

/// Deterministic variant of [`server_handshake`] (tests, golden vectors): the caller supplies the
/// 32 secret bytes (clamped by X25519 as usual) and the salt (at least 16 bytes; the first 16
/// form the IV and the whole salt is what CONNACK carries).
pub fn server_handshake_with(
    client_key_b64: &str,
    server_secret: [u8; 32],
    salt: &str,
) -> Result<ServerHandshake, CryptoError> {
    let secret = StaticSecret::from(server_secret);
    let cipher = derive(&secret, client_key_b64, salt)?;
    Ok(ServerHandshake {
        server_key: B64.encode(PublicKey::from(&secret).as_bytes()),
        salt: salt.to_owned(),
        cipher,
    })
}

/// Client side of the handshake, for test clients.
#[derive(Clone)]
pub struct ClientKeys {
    secret: StaticSecret,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeys")
            .field("public_key", &self.public_key())
            .finish()
    }
}

impl ClientKeys {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::from_secret(secret)
    }

    /// A key pair from fixed secret bytes. Same public key as the SDK's
    /// `curve25519-js` `generateKeyPair(seed)` for the same 32 bytes.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        ClientKeys {
            secret: StaticSecret::from(secret),
        }
    }

    /// CONNECT.clientKey: base64 of the public key.
    pub fn public_key(&self) -> String {
        B64.encode(PublicKey::from(&self.secret).as_bytes())
    }

    /// The session cipher from CONNACK.serverKey and CONNACK.salt.
    pub fn derive(&self, server_key_b64: &str, salt: &str) -> Result<SessionCipher, CryptoError> {
        derive(&self.secret, server_key_b64, salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_salt_is_alphanumeric() {
        let client = ClientKeys::generate();
        let hs = server_handshake(&client.public_key()).unwrap();
        assert_eq!(hs.salt.len(), SALT_LEN);
        assert!(hs.salt.bytes().all(|b| b.is_ascii_alphanumeric()));
        let c = client.derive(&hs.server_key, &hs.salt).unwrap();
        assert_eq!(c, hs.cipher);
        assert!(c
            .aes_key
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let text = c.encrypt(b"{\"type\":1,\"content\":\"hi\"}");
        assert_eq!(
            hs.cipher.decrypt(&text).unwrap(),
            b"{\"type\":1,\"content\":\"hi\"}"
        );
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert_eq!(
            server_handshake("not base64!").unwrap_err(),
            CryptoError::KeyBase64
        );
        assert_eq!(
            server_handshake(&B64.encode([1u8; 31])).unwrap_err(),
            CryptoError::KeyLength(31)
        );
        assert_eq!(
            server_handshake(&B64.encode([0u8; 32])).unwrap_err(),
            CryptoError::WeakKey
        );
        let client = ClientKeys::generate();
        assert_eq!(
            server_handshake_with(&client.public_key(), [7; 32], "short").unwrap_err(),
            CryptoError::SaltTooShort(5)
        );
    }

    #[test]
    fn decrypt_rejects_garbage() {
        let c = SessionCipher::new(*b"0123456789abcdef", *b"abcdefghijklmnop");
        assert_eq!(c.decrypt(b"%%%"), Err(CryptoError::PayloadBase64));
        assert_eq!(c.decrypt(b"AAAA"), Err(CryptoError::Decrypt));
        assert_eq!(c.decrypt(b""), Err(CryptoError::Decrypt));
    }
}
