//! JWT verification for the socket.io handshake (`auth.token`) and REST (`Authorization: Bearer`).
//!
//! Exactly one algorithm is accepted: HS256 with a shared secret, or RS256 / ES256 with a public key. `exp` and
//! `nbf` are honoured when present (5 s leeway for clock skew); `iss` / `aud` only when configured.

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

pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    alg_name: &'static str,
}

impl Verifier {
    /// Builds a verifier; fails with a readable reason when the configuration is unusable.
    pub fn new(cfg: &AuthConfig) -> Result<Self, String> {
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
        let mut validation = Validation::new(alg);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        if let Some(iss) = &cfg.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        if let Some(aud) = &cfg.audience {
            validation.set_audience(&[aud]);
            validation.validate_aud = true;
            validation.required_spec_claims.insert("aud".into());
        }
        Ok(Self {
            key,
            validation,
            alg_name,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data =
            decode::<serde_json::Value>(token, &self.key, &self.validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::MissingAlgorithm => AuthError::WrongAlgorithm(self.alg_name),
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::Claims("iss is not accepted".into()),
                ErrorKind::InvalidAudience => AuthError::Claims("aud is not accepted".into()),
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
            })?;
        let claims: Claims = serde_json::from_value(data.claims).map_err(|e| {
            AuthError::Claims(format!(
                "must include string user_id, campus_id and userName ({e})"
            ))
        })?;
        let bad = |s: &str| s.is_empty() || s.len() > 128 || s.chars().any(char::is_control);
        if bad(&claims.user_id)
            || bad(&claims.campus_id)
            || claims.user_name.trim().is_empty()
            || claims.user_name.len() > 256
        {
            return Err(AuthError::Claims(
                "user_id, campus_id and userName must be non-empty and short".into(),
            ));
        }
        Ok(Identity {
            user_id: UserId::new(claims.user_id),
            user_name: claims.user_name.trim().to_owned(),
            campus_id: claims.campus_id,
            email: claims.email,
        })
    }
}

/// Mints tokens for the bundled web client in development mode (HS256 only: the server must hold the secret).
pub struct DevSigner {
    key: jsonwebtoken::EncodingKey,
}

impl DevSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        }
    }

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

    fn hs_verifier() -> Verifier {
        Verifier::new(&AuthConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some(SECRET.into()),
            public_key_pem: None,
            public_key_file: None,
            issuer: None,
            audience: None,
        })
        .expect("verifier")
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
        };
        assert!(Verifier::new(&cfg(None)).is_err());
        assert!(Verifier::new(&cfg(Some("short"))).is_err());
        assert!(format!("{:?}", cfg(Some(SECRET))).contains("<redacted>"));
        assert!(!format!("{:?}", cfg(Some(SECRET))).contains(SECRET));
    }
}
