//! What a browser needs besides our candidates to reach the media plane: TURN servers, with credentials per user
//! that expire (the TURN REST scheme coturn's `use-auth-secret` implements: username `<expiry unix secs>:<userId>`,
//! credential base64(HMAC-SHA1(secret, username))), or static ones; and `iceTransportPolicy: 'relay'` when the
//! operator forces relay. Handed out in `transport-created.params` (mediasoup-client reads `iceServers` and
//! `iceTransportPolicy` from the options it gets) and in `webrtc-config` (with a token).

use serde_json::{json, Value};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceConfig {
    /// `turn:`/`turns:`/`stun:` URLs; empty = no iceServers.
    pub turn_urls: Vec<String>,
    /// The shared secret for time-limited credentials (coturn `static-auth-secret`).
    pub turn_secret: Option<String>,
    /// Static credentials (used when no secret is set).
    pub turn_username: Option<String>,
    pub turn_credential: Option<String>,
    /// Lifetime of time-limited credentials.
    pub turn_ttl_secs: u64,
    /// `iceTransportPolicy: 'relay'`: browsers use only TURN relays.
    pub force_relay: bool,
}

/// base64 (standard alphabet, padded).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The TURN REST credential for `username` (coturn's `use-auth-secret`).
pub fn turn_rest_credential(secret: &str, username: &str) -> String {
    base64(&sfu::hmac_sha1(secret.as_bytes(), username.as_bytes()))
}

impl IceConfig {
    /// `iceServers` for `user` at `now_secs` (unix), or None when no TURN server is configured.
    pub fn ice_servers(&self, user: &str, now_secs: u64) -> Option<Value> {
        if self.turn_urls.is_empty() {
            return None;
        }
        let mut server = json!({"urls": self.turn_urls});
        if let Some(secret) = &self.turn_secret {
            let username = format!("{}:{user}", now_secs.saturating_add(self.turn_ttl_secs));
            server["credential"] = json!(turn_rest_credential(secret, &username));
            server["username"] = json!(username);
            server["credentialType"] = json!("password");
        } else if let (Some(u), Some(c)) = (&self.turn_username, &self.turn_credential) {
            server["username"] = json!(u);
            server["credential"] = json!(c);
            server["credentialType"] = json!("password");
        }
        Some(json!([server]))
    }

    /// Adds `iceServers` and `iceTransportPolicy` (when set) to a transport's params or to webrtc-config.
    pub fn decorate(&self, target: &mut Value, user: &str, now_secs: u64) {
        let Some(o) = target.as_object_mut() else {
            return;
        };
        if let Some(servers) = self.ice_servers(user, now_secs) {
            o.insert("iceServers".into(), servers);
        }
        if self.force_relay {
            o.insert("iceTransportPolicy".into(), json!("relay"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn turn_rest_credentials_are_coturns() {
        // HMAC-SHA1("north", "1433895918:alice") as coturn's turnutils / the TURN REST draft compute it.
        let c = turn_rest_credential("north", "1433895918:alice");
        assert_eq!(c, base64(&sfu::hmac_sha1(b"north", b"1433895918:alice")));
        assert_eq!(c.len(), 28);
        // RFC 2202 test case 2 pins the HMAC itself.
        assert_eq!(
            sfu::hmac_sha1(b"Jefe", b"what do ya want for nothing?"),
            [
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ]
        );
    }

    #[test]
    fn per_user_expiring_credentials_static_ones_and_relay() {
        let cfg = IceConfig {
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            turn_secret: Some("s3cret".into()),
            turn_ttl_secs: 600,
            force_relay: true,
            ..IceConfig::default()
        };
        let mut params = json!({"id": "tr_x"});
        cfg.decorate(&mut params, "user_1", 1_000);
        let s = &params["iceServers"][0];
        assert_eq!(s["username"], "1600:user_1");
        assert_eq!(
            s["credential"],
            turn_rest_credential("s3cret", "1600:user_1")
        );
        assert_eq!(s["urls"][0], "turn:127.0.0.1:3478?transport=udp");
        assert_eq!(params["iceTransportPolicy"], "relay");
        let other = cfg.ice_servers("user_2", 1_000).unwrap();
        assert_ne!(other[0]["credential"], s["credential"]);

        let fixed = IceConfig {
            turn_urls: vec!["turns:turn.example.com:443".into()],
            turn_username: Some("u".into()),
            turn_credential: Some("p".into()),
            ..IceConfig::default()
        };
        let mut params = json!({});
        fixed.decorate(&mut params, "user_1", 1_000);
        assert_eq!(params["iceServers"][0]["username"], "u");
        assert_eq!(params["iceServers"][0]["credential"], "p");
        assert!(params.get("iceTransportPolicy").is_none());

        let mut none = json!({});
        IceConfig::default().decorate(&mut none, "user_1", 1_000);
        assert_eq!(none, json!({}));
    }
}
