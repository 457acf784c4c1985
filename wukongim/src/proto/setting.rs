//! The SEND/RECV/SUB "setting" byte. It is a newtype over the raw byte rather than a set of
//! booleans so that bits this server does not interpret survive decode → store → encode.
//!
//! Bit meanings (verified in `wukongimjssdk` 1.0.4 `proto.js` `Setting.toUint8/fromUint8` and in
//! the Go `wkproto` `setting.go` history):
//!
//! | bit  | meaning     | SDK 1.0.4 | Go 2023-07..2025-02 | Go since 2025-02 |
//! |------|-------------|-----------|---------------------|------------------|
//! | 0x80 | receipt     | yes       | yes                 | yes              |
//! | 0x20 | signal      | –         | yes                 | yes              |
//! | 0x10 | no-encrypt  | –         | yes                 | yes              |
//! | 0x08 | topic       | yes       | yes                 | yes              |
//! | 0x04 | stream      | **yes**   | **yes**             | –                |
//! | 0x02 | stream      | –         | –                   | yes              |
//!
//! The SDK is authoritative, so [`Setting::STREAM`] is 0x04. It only changes the layout for
//! protocol versions 2..=4 (v5 and later carry no stream fields at all, and the clients that moved
//! the bit to 0x02 speak v5+), so the disagreement with today's Go tree never matters on the wire
//! for the versions where the bit is read.

/// Raw setting byte; unknown bits are preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Setting(pub u8);

impl Setting {
    /// Sender asks for read receipts.
    pub const RECEIPT: u8 = 0x80;
    /// Signal-protocol encryption (Go only; opaque here).
    pub const SIGNAL: u8 = 0x20;
    /// Payload is not encrypted (Go only; opaque here).
    pub const NO_ENCRYPT: u8 = 0x10;
    /// A topic string follows the msgKey (SEND) / timestamp (RECV).
    pub const TOPIC: u8 = 0x08;
    /// Stream fields are present (protocol versions 2..=4 only). SDK 1.0.4 value.
    pub const STREAM: u8 = 0x04;

    /// Whether all bits of `mask` are set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// Returns a copy with `mask` set or cleared.
    pub fn with(self, mask: u8, on: bool) -> Self {
        if on {
            Setting(self.0 | mask)
        } else {
            Setting(self.0 & !mask)
        }
    }

    pub fn receipt(self) -> bool {
        self.has(Self::RECEIPT)
    }

    pub fn topic(self) -> bool {
        self.has(Self::TOPIC)
    }

    pub fn stream(self) -> bool {
        self.has(Self::STREAM)
    }

    pub fn no_encrypt(self) -> bool {
        self.has(Self::NO_ENCRYPT)
    }
}

impl From<u8> for Setting {
    fn from(v: u8) -> Self {
        Setting(v)
    }
}

impl From<Setting> for u8 {
    fn from(s: Setting) -> u8 {
        s.0
    }
}
