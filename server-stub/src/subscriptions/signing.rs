//! The webhook signing key: Ed25519, published as a JWKS, with an RFC 7638 key id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Random bytes from the system's generator (zeros only if it fails, which the
/// signing key's creation would have reported first).
pub(super) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let _ = SystemRandom::new().fill(&mut out);
    out
}

/// The process's signing key.
pub(super) struct Signer {
    key: Ed25519KeyPair,
    x: String,
    kid: String,
}

impl Signer {
    /// A fresh key.
    pub(super) fn generate() -> Result<Signer, String> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "no system randomness for the signing key".to_owned())?;
        let key = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| format!("cannot create the signing key: {e}"))?;
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let kid = format!("ds_{}", URL_SAFE_NO_PAD.encode(digest.as_ref()));
        Ok(Signer { key, x, kid })
    }

    /// The key id.
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `message`; the signature in unpadded base64url.
    pub(super) fn sign(&self, message: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(message).as_ref())
    }

    /// The JWKS document publishing the public key.
    pub(super) fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "use": "sig", "alg": "EdDSA"
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519};

    #[test]
    fn signatures_verify_with_the_published_key() {
        let s = Signer::generate().unwrap();
        assert!(s.kid().starts_with("ds_"));
        let sig = URL_SAFE_NO_PAD.decode(s.sign(b"1.{}")).unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(s.jwks()["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        assert!(UnparsedPublicKey::new(&ED25519, x)
            .verify(b"1.{}", &sig)
            .is_ok());
    }
}
