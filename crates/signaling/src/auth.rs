//! JWT verification for the socket.io handshake (`auth.token`) and REST (`Authorization: Bearer`).
//!
//! Exactly one algorithm is accepted: HS256 with a shared secret, or RS256 / ES256 with a public key. `exp` is
//! required unless `auth.allow_no_exp` is set, and honoured (with `nbf`) with a 5 s leeway for clock skew; `iss` /
//! `aud` are checked only when configured.
//!
//! Development mode never signs with the configured secret: the process makes a random [`DevKey`] per run,
//! `/dev/token` signs with it, and the verifier accepts those tokens too (only when it was given that key). A dev
//! token therefore means nothing to any other server, even one configured with the same secret.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use meeting::Identity;
use proto::UserId;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// The `auth` section of the configuration: what the verifier needs. Secrets are redacted from `Debug`.
#[derive(Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret.
    pub secret: Option<String>,
    /// RS256 / ES256 public key, PEM text.
    pub public_key_pem: Option<String>,
    /// Read the public key from this file instead (the configuration loader fills `public_key_pem` from it).
    #[serde(default)]
    pub public_key_file: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Accept tokens without `exp` (they never expire). Off by default: a leaked token would work forever.
    #[serde(default)]
    pub allow_no_exp: bool,
    /// A connected socket whose token expires is told (`auth:expired`) and disconnected this many seconds later
    /// unless it sends a fresh token (`auth:refresh`).
    #[serde(default = "default_expiry_grace_secs")]
    pub expiry_grace_secs: u32,
}

fn default_expiry_grace_secs() -> u32 {
    60
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field(
                "public_key_pem",
                &self.public_key_pem.as_ref().map(|_| "<set>"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("allow_no_exp", &self.allow_no_exp)
            .field("expiry_grace_secs", &self.expiry_grace_secs)
            .finish()
    }
}

/// Why a token was refused. The `Display` text is what the client sees (`connect_error.message`, REST 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("authentication required: pass a JWT as auth.token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid token: signature does not match")]
    BadSignature,
    #[error("invalid token: algorithm not accepted (this server accepts {0})")]
    WrongAlgorithm(&'static str),
    #[error("token expired")]
    Expired,
    #[error("token not yet valid (nbf is in the future)")]
    NotYetValid,
    #[error("invalid token: claims {0}")]
    Claims(String),
}

#[derive(Deserialize)]
struct Claims {
    user_id: String,
    campus_id: String,
    #[serde(rename = "userName")]
    user_name: String,
    #[serde(default)]
    email: String,
}

/// A verified token: who it names, and when it expires (unix seconds; `None` only with `allow_no_exp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub identity: Identity,
    pub expires_at: Option<i64>,
}

pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    alg_name: &'static str,
    /// Development mode only: this process's dev key and how its tokens are checked.
    dev: Option<(DecodingKey, Validation)>,
    expiry_grace: std::time::Duration,
}

impl Verifier {
    /// Builds a verifier; fails with a readable reason when the configuration is unusable. `dev`: the per-run key
    /// of development mode, whose tokens are accepted besides the configured ones.
    pub fn new(cfg: &AuthConfig, dev: Option<&DevKey>) -> Result<Self, String> {
        let (alg, alg_name, key) = match cfg.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = cfg
                    .secret
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .ok_or("auth.secret is required for HS256")?;
                if secret.len() < 32 {
                    return Err("auth.secret must be at least 32 bytes".into());
                }
                (
                    Algorithm::HS256,
                    "HS256",
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            JwtAlgorithm::RS256 => {
                let pem = cfg
                    .public_key_pem
                    .as_deref()
                    .ok_or("auth.public_key_pem is required for RS256")?;
                let key = DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| format!("auth.public_key_pem: {e}"))?;
                (Algorithm::RS256, "RS256", key)
            }
            JwtAlgorithm::ES256 => {
                let pem = cfg
                    .public_key_pem
                    .as_deref()
                    .ok_or("auth.public_key_pem is required for ES256")?;
                let key = DecodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|e| format!("auth.public_key_pem: {e}"))?;
                (Algorithm::ES256, "ES256", key)
            }
        };
        let base = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = 5;
            v.validate_nbf = true;
            v.required_spec_claims.clear();
            v.validate_aud = false;
            v
        };
        let mut validation = base(alg);
        if !cfg.allow_no_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        if let Some(aud) = &cfg.audience {
            validation.set_audience(&[aud]);
            validation.validate_aud = true;
            validation.required_spec_claims.insert("aud".into());
        }
        let dev = dev.map(|k| {
            let mut v = base(Algorithm::HS256);
            v.required_spec_claims.insert("exp".into());
            (DecodingKey::from_secret(k.0.as_bytes()), v)
        });
        Ok(Self {
            key,
            validation,
            alg_name,
            dev,
            expiry_grace: std::time::Duration::from_secs(u64::from(cfg.expiry_grace_secs)),
        })
    }

    /// How long a socket whose token expired may stay to send a fresh one.
    pub fn expiry_grace(&self) -> std::time::Duration {
        self.expiry_grace
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        self.verify_token(token).map(|v| v.identity)
    }

    /// Verifies a token and returns its identity and expiry.
    pub fn verify_token(&self, token: &str) -> Result<Verified, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = match decode::<serde_json::Value>(token, &self.key, &self.validation) {
            Ok(d) => d,
            Err(e) => {
                let err = self.map_error(&e);
                // A dev token fails the configured key with a signature or algorithm error; only then is the dev
                // key tried (and its own errors are not shown: the configured key's reason is the useful one).
                match &self.dev {
                    Some((key, validation))
                        if matches!(
                            err,
                            AuthError::BadSignature | AuthError::WrongAlgorithm(_)
                        ) =>
                    {
                        decode::<serde_json::Value>(token, key, validation).map_err(|_| err)?
                    }
                    _ => return Err(err),
                }
            }
        };
        let expires_at = data
            .claims
            .get("exp")
            .and_then(serde_json::Value::as_f64)
            .map(|f| f as i64);
        let claims: Claims = serde_json::from_value(data.claims).map_err(|e| {
            AuthError::Claims(format!(
                "must include string user_id, campus_id and userName ({e})"
            ))
        })?;
        let bad = |s: &str| s.is_empty() || s.len() > 128 || s.chars().any(char::is_control);
        let user_name = clean_display_name(&claims.user_name);
        if bad(&claims.user_id)
            || bad(&claims.campus_id)
            || user_name.is_empty()
            || user_name.len() > 256
        {
            return Err(AuthError::Claims(
                "user_id, campus_id and userName must be non-empty and short".into(),
            ));
        }
        Ok(Verified {
            identity: Identity {
                user_id: UserId::new(claims.user_id),
                user_name,
                campus_id: claims.campus_id,
                email: claims.email,
            },
            expires_at,
        })
    }

    fn map_error(&self, e: &jsonwebtoken::errors::Error) -> AuthError {
        match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm => AuthError::WrongAlgorithm(self.alg_name),
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::Claims("iss is not accepted".into()),
            ErrorKind::InvalidAudience => AuthError::Claims("aud is not accepted".into()),
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::Claims(
                "exp is missing (this server accepts only tokens that expire)".into(),
            ),
            ErrorKind::MissingRequiredClaim(c) => AuthError::Claims(format!("{c} is missing")),
            ErrorKind::InvalidClaimFormat(c) => {
                AuthError::Claims(format!("{c} has the wrong type"))
            }
            ErrorKind::Json(_) => {
                AuthError::Invalid("not a JWT (bad header or payload JSON, or alg none)".into())
            }
            ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                AuthError::Invalid("not a JWT (bad base64url)".into())
            }
            _ => AuthError::Invalid("malformed token".into()),
        }
    }
}

/// A display name as shown to others: control characters (C0, C1) and the invisible bidirectional formatting
/// characters (LRM/RLM/ALM, the embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069) and line/paragraph
/// separators are removed, and surrounding whitespace trimmed. They are stripped rather than refused because
/// identity providers do pass names with a stray mark, and an override would let a name reorder the text around it
/// in every other participant's UI ("Trojan Source").
pub fn clean_display_name(name: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
                | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    let kept: String = name.chars().filter(|c| !hidden(*c)).collect();
    kept.trim().to_owned()
}

/// The random HS256 key development mode signs `/dev/token` tokens with: made per run, never configured, never
/// logged, so no configured secret ever signs a dev token.
pub struct DevKey(String);

impl DevKey {
    pub fn generate() -> Self {
        Self(proto::ids::random_base62(48))
    }

    pub fn signer(&self) -> DevSigner {
        DevSigner {
            key: jsonwebtoken::EncodingKey::from_secret(self.0.as_bytes()),
        }
    }
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKey(<redacted>)")
    }
}

/// Mints tokens for the bundled web client in development mode, with the run's [`DevKey`].
pub struct DevSigner {
    key: jsonwebtoken::EncodingKey,
}

impl DevSigner {
    /// A token valid for 12 hours.
    pub fn mint(
        &self,
        user_id: &str,
        user_name: &str,
        campus_id: &str,
        email: &str,
    ) -> Result<String, String> {
        let now = proto::time::now_ms() / 1000;
        let claims = serde_json::json!({
            "user_id": user_id, "campus_id": campus_id, "userName": user_name, "email": email,
            "iat": now, "exp": now + 12 * 3600,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn hs_config() -> AuthConfig {
        AuthConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some(SECRET.into()),
            public_key_pem: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            allow_no_exp: false,
            expiry_grace_secs: 60,
        }
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(&hs_config(), None).expect("verifier")
    }

    fn now() -> i64 {
        proto::time::now_ms() / 1000
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode")
    }

    fn good() -> serde_json::Value {
        json!({"user_id":"user_123","campus_id":"campus_001","userName":"John Doe","email":"john@example.com","exp":now()+600})
    }

    #[test]
    fn accepts_a_valid_token() {
        let id = hs_verifier().verify(&token(good())).expect("valid");
        assert_eq!(id.user_id.as_str(), "user_123");
        assert_eq!(id.user_name, "John Doe");
        assert_eq!(id.campus_id, "campus_001");
    }

    #[test]
    fn refuses_each_bad_token_with_its_reason() {
        let v = hs_verifier();
        assert_eq!(v.verify(""), Err(AuthError::Missing));
        assert!(matches!(v.verify("garbage"), Err(AuthError::Invalid(_))));
        let mut expired = good();
        expired["exp"] = json!(now() - 30);
        assert_eq!(v.verify(&token(expired)), Err(AuthError::Expired));
        let mut early = good();
        early["nbf"] = json!(now() + 600);
        assert_eq!(v.verify(&token(early)), Err(AuthError::NotYetValid));
        let mut missing = good();
        missing.as_object_mut().map(|o| o.remove("user_id"));
        assert!(matches!(
            v.verify(&token(missing)),
            Err(AuthError::Claims(_))
        ));
        let wrong_key = encode(
            &Header::default(),
            &good(),
            &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        )
        .expect("encode");
        assert_eq!(v.verify(&wrong_key), Err(AuthError::BadSignature));
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &good(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert_eq!(v.verify(&hs384), Err(AuthError::WrongAlgorithm("HS256")));
        // alg none: header {"alg":"none"} and an empty signature
        let none = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            token(good()).split('.').nth(1).unwrap_or("")
        );
        assert!(matches!(
            v.verify(&none),
            Err(AuthError::Invalid(_)) | Err(AuthError::WrongAlgorithm(_))
        ));
    }

    #[test]
    fn rejects_weak_or_missing_configuration() {
        let cfg = |secret: Option<&str>| AuthConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: secret.map(str::to_owned),
            public_key_pem: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            allow_no_exp: false,
            expiry_grace_secs: 60,
        };
        assert!(Verifier::new(&cfg(None), None).is_err());
        assert!(Verifier::new(&cfg(Some("short")), None).is_err());
        assert!(format!("{:?}", cfg(Some(SECRET))).contains("<redacted>"));
        assert!(!format!("{:?}", cfg(Some(SECRET))).contains(SECRET));
    }

    #[test]
    fn a_token_without_exp_is_refused_unless_allowed() {
        let mut no_exp = good();
        no_exp.as_object_mut().map(|o| o.remove("exp"));
        let err = hs_verifier().verify(&token(no_exp.clone()));
        assert!(
            matches!(&err, Err(AuthError::Claims(m)) if m.starts_with("exp is missing")),
            "{err:?}"
        );
        let lenient = Verifier::new(
            &AuthConfig {
                allow_no_exp: true,
                ..hs_config()
            },
            None,
        )
        .expect("verifier");
        let v = lenient.verify_token(&token(no_exp)).expect("allowed");
        assert_eq!(v.expires_at, None);
        // and the expiry of a token that has one is reported
        let mut claims = good();
        claims["exp"] = json!(now() + 77);
        let v = hs_verifier().verify_token(&token(claims)).expect("valid");
        assert_eq!(v.expires_at, Some(now() + 77));
    }

    #[test]
    fn dev_tokens_are_signed_with_the_run_key_only() {
        let dev = DevKey::generate();
        let minted = dev
            .signer()
            .mint("user_dev", "Dev", "campus_dev", "")
            .expect("mint");
        // The configured secret does not verify a dev token: a production server with the same secret refuses it.
        assert_eq!(hs_verifier().verify(&minted), Err(AuthError::BadSignature));
        let dev_verifier = Verifier::new(&hs_config(), Some(&dev)).expect("verifier");
        let v = dev_verifier.verify_token(&minted).expect("dev token");
        assert_eq!(v.identity.user_id.as_str(), "user_dev");
        assert!(v.expires_at.is_some_and(|e| e > now()));
        // Tokens of the configured secret still work in development mode (the browser test harnesses mint them).
        assert!(dev_verifier.verify(&token(good())).is_ok());
        // Another run's dev key is refused.
        let other = DevKey::generate()
            .signer()
            .mint("user_dev", "Dev", "campus_dev", "")
            .expect("mint");
        assert_eq!(dev_verifier.verify(&other), Err(AuthError::BadSignature));
        assert!(!format!("{dev:?}").contains(&dev.0));
    }

    #[test]
    fn display_names_lose_bidi_and_control_characters() {
        assert_eq!(clean_display_name("  Ann\u{202E}cod.exe "), "Anncod.exe");
        assert_eq!(
            clean_display_name("a\u{2066}b\u{2069}c\u{200E}d\u{200F}e\u{0007}f\u{009B}g\nh"),
            "abcdefgh"
        );
        assert_eq!(clean_display_name("Zoë 李 🎉"), "Zoë 李 🎉");
        let mut c = good();
        c["userName"] = json!("\u{202E}Mallory\u{202C}");
        let id = hs_verifier().verify(&token(c)).expect("valid");
        assert_eq!(id.user_name, "Mallory");
        let mut only_marks = good();
        only_marks["userName"] = json!("\u{202E}\u{200F} \u{2066}");
        assert!(matches!(
            hs_verifier().verify(&token(only_marks)),
            Err(AuthError::Claims(_))
        ));
    }
}
