//! Typed ids. One macro makes them all, so a `UserId` can never be passed where a `MeetingId` is meant.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base62 characters.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect()
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, ts_rs::TS, utoipa::ToSchema)]
        // A newtype struct is its inner string in JSON (serde's newtype rule), so no `transparent` is needed (ts-rs
        // reads the same rule and declares `type X = string`).
        pub struct $name(String);

        impl $name {
            /// A fresh random id with this type's prefix.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), random_base62(16)))
            }
            /// Wraps an id that was already validated (or read back from the store).
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

typed_id!(
    /// A meeting (`meeting_<base62>` when the server makes one).
    MeetingId,
    "meeting"
);
typed_id!(
    /// One join of one user: a participant session. A user in two tabs is two participants.
    ParticipantId,
    "participant"
);
typed_id!(
    /// A user, as named by the JWT's `user_id` claim.
    UserId,
    "user"
);
typed_id!(
    /// A stored chat message.
    MessageId,
    "msg"
);
typed_id!(
    /// A recording of a meeting (`rec_<base62>`); also the name of its folder.
    RecordingId,
    "rec"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_prefix_and_differ() {
        let a = MeetingId::generate();
        let b = MeetingId::generate();
        assert!(a.as_str().starts_with("meeting_"));
        assert_eq!(a.as_str().len(), "meeting_".len() + 16);
        assert_ne!(a, b);
    }
}
