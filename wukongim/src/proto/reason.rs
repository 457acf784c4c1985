//! Reason codes carried by CONNACK, SENDACK, DISCONNECT and SUBACK. The numbering is shared by
//! the Go server (`frame.ReasonCode`) and the JS SDK (`model.js` `ReasonCode`); both agree on
//! 0..=23, which is what this enum names.

/// A WuKongIM reason code.
///
/// Conversion from `u8` never fails: values without a name (the newer Go server also defines
/// 24 Disband, 25 SendBan, 26 ChannelDeleting, 27 ProtocolUpgradeRequired, 28
/// IdempotencyConflict, 29 MessageSeqExhausted) are kept verbatim in [`ReasonCode::Other`] so a
/// decode → encode round trip is lossless. `From<u8>` never produces `Other` for a named value;
/// building `Other(1)` by hand is legal and encodes as 1, but decodes back as `Success`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReasonCode {
    #[default]
    Unknown,
    Success,
    AuthFail,
    SubscriberNotExist,
    InBlacklist,
    ChannelNotExist,
    UserNotOnNode,
    SenderOffline,
    MsgKeyError,
    PayloadDecodeError,
    ForwardSendPacketError,
    NotAllowSend,
    ConnectKick,
    NotInWhitelist,
    QueryTokenError,
    SystemError,
    ChannelIDError,
    NodeMatchError,
    NodeNotMatch,
    Ban,
    NotSupportHeader,
    ClientKeyIsEmpty,
    RateLimit,
    NotSupportChannelType,
    /// Any code without a name here (24..=255), preserved as is.
    Other(u8),
}

const NAMED: [ReasonCode; 24] = [
    ReasonCode::Unknown,
    ReasonCode::Success,
    ReasonCode::AuthFail,
    ReasonCode::SubscriberNotExist,
    ReasonCode::InBlacklist,
    ReasonCode::ChannelNotExist,
    ReasonCode::UserNotOnNode,
    ReasonCode::SenderOffline,
    ReasonCode::MsgKeyError,
    ReasonCode::PayloadDecodeError,
    ReasonCode::ForwardSendPacketError,
    ReasonCode::NotAllowSend,
    ReasonCode::ConnectKick,
    ReasonCode::NotInWhitelist,
    ReasonCode::QueryTokenError,
    ReasonCode::SystemError,
    ReasonCode::ChannelIDError,
    ReasonCode::NodeMatchError,
    ReasonCode::NodeNotMatch,
    ReasonCode::Ban,
    ReasonCode::NotSupportHeader,
    ReasonCode::ClientKeyIsEmpty,
    ReasonCode::RateLimit,
    ReasonCode::NotSupportChannelType,
];

impl ReasonCode {
    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            ReasonCode::Other(v) => v,
            named => NAMED
                .iter()
                .position(|c| *c == named)
                .map_or(0, |i| i as u8),
        }
    }

    /// The code for a wire byte (never fails, see the type docs).
    pub fn from_u8(v: u8) -> Self {
        NAMED
            .get(v as usize)
            .copied()
            .unwrap_or(ReasonCode::Other(v))
    }
}

impl From<u8> for ReasonCode {
    fn from(v: u8) -> Self {
        Self::from_u8(v)
    }
}

impl From<ReasonCode> for u8 {
    fn from(r: ReasonCode) -> u8 {
        r.to_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(ReasonCode::from_u8(v).to_u8(), v);
        }
        assert_eq!(ReasonCode::from_u8(1), ReasonCode::Success);
        assert_eq!(ReasonCode::from_u8(12), ReasonCode::ConnectKick);
        assert_eq!(ReasonCode::from_u8(21), ReasonCode::ClientKeyIsEmpty);
        assert_eq!(ReasonCode::from_u8(23), ReasonCode::NotSupportChannelType);
        assert_eq!(ReasonCode::from_u8(24), ReasonCode::Other(24));
        assert_eq!(u8::from(ReasonCode::PayloadDecodeError), 9);
    }
}
