//! The one codec of SQE user data: every kind of request the driver submits, and how its CQE
//! finds its way back.

/// Bit 63: the address of a handoff cell ([`HandoffOp`](crate::handoff::HandoffOp)).
const HANDOFF_TAG: u64 = 1 << 63;
/// Bit 62: the address of a socket's receive queue ([`RecvQueue`](crate::multishot::RecvQueue)).
const RECEIVE_TAG: u64 = 1 << 62;
/// Bit 61: a slot of the ring's file table, shifted left by one, and whether the SQE installs a
/// file there (bit 0) or empties it.
const FILE_SLOT_TAG: u64 = 1 << 61;
/// Values at or above this are the reserved kinds below (never a key or an address: user-space
/// addresses have neither high bit set, and keys are slab indices).
const WAKE: u64 = u64::MAX;
const IGNORED: u64 = u64::MAX - 1;
const CLOSE: u64 = u64::MAX - 2;

/// What a CQE belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserData {
    /// The eventfd read that wakes the ring.
    Wake,
    /// A request whose CQE nobody waits for (a cancel, a `MSG_RING` wake).
    Ignored,
    /// The `CLOSE` of a dropped socket (counted, so that shutdown waits for it).
    Close,
    /// An operation of the op table, by key.
    Op(usize),
    /// A handed-off operation: the address of its cell, whose count the SQE holds.
    Handoff(usize),
    /// A socket's multishot receive: the address of its queue, whose count the SQE holds.
    Receive(usize),
    /// A `FILES_UPDATE` of a slot of the ring's file table: an install, or its emptying.
    FileSlot { index: u32, install: bool },
}

impl UserData {
    /// The 64 bits to put in an SQE.
    pub(crate) fn encode(self) -> u64 {
        match self {
            UserData::Wake => WAKE,
            UserData::Ignored => IGNORED,
            UserData::Close => CLOSE,
            UserData::Op(key) => {
                debug_assert!((key as u64) & (HANDOFF_TAG | RECEIVE_TAG | FILE_SLOT_TAG) == 0);
                key as u64
            }
            UserData::Handoff(addr) => addr as u64 | HANDOFF_TAG,
            UserData::Receive(addr) => addr as u64 | RECEIVE_TAG,
            UserData::FileSlot { index, install } => {
                FILE_SLOT_TAG | (index as u64) << 1 | install as u64
            }
        }
    }

    /// What a CQE's user data names.
    pub(crate) fn decode(raw: u64) -> Self {
        match raw {
            WAKE => UserData::Wake,
            IGNORED => UserData::Ignored,
            CLOSE => UserData::Close,
            ud if ud & HANDOFF_TAG != 0 => UserData::Handoff((ud & !HANDOFF_TAG) as usize),
            ud if ud & RECEIVE_TAG != 0 => UserData::Receive((ud & !RECEIVE_TAG) as usize),
            ud if ud & FILE_SLOT_TAG != 0 => UserData::FileSlot {
                index: ((ud & !FILE_SLOT_TAG) >> 1) as u32,
                install: ud & 1 != 0,
            },
            key => UserData::Op(key as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UserData;

    #[test]
    fn every_kind_survives_the_round_trip() {
        let addr = Box::into_raw(Box::new(0u64)) as usize;
        for ud in [
            UserData::Wake,
            UserData::Ignored,
            UserData::Close,
            UserData::Op(0),
            UserData::Op(12345),
            UserData::Handoff(addr),
            UserData::Receive(addr),
            UserData::FileSlot {
                index: 0,
                install: true,
            },
            UserData::FileSlot {
                index: 16383,
                install: false,
            },
        ] {
            assert_eq!(UserData::decode(ud.encode()), ud);
        }
        // SAFETY: the box made above, freed once.
        drop(unsafe { Box::from_raw(addr as *mut u64) });
    }
}
