//! Shared value types: image digests, image references and registry hosts.
//!
//! Every layer names images, so this module sits under all of them and imports nothing of the
//! crate: configuration, clients, planning and the apply stages read the same definitions.

use std::fmt;

/// Whether `s` is `sha256:` and 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// `host/repository` and the digest or tag of an image reference.
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, Some(digest));
    }
    // A tag follows the last `:` after the last `/` (a host may have a port).
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], Some(&image[slash + i + 1..])),
        None => (image, None),
    }
}

/// The digest an image reference pins, when it pins one.
pub fn digest_of(image: &str) -> Option<&str> {
    match split_image(image) {
        (_, Some(d)) if is_digest(d) => Some(d),
        _ => None,
    }
}

/// A registry host override, with the scheme the action's own registry calls use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryHost {
    /// `host` or `host:port`, as it appears in image references.
    pub host: String,
    /// `false` only when the override was written `http://...`.
    pub https: bool,
}

/// A registry host that cannot be used, as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAHost(pub String);

impl fmt::Display for NotAHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`registry-host` `{}` is not a host name: write `HOST`, `HOST:PORT` or `http://HOST:PORT`",
            self.0
        )
    }
}

impl std::error::Error for NotAHost {}

impl RegistryHost {
    pub fn parse(raw: &str) -> Result<Self, NotAHost> {
        let (https, rest) = if let Some(r) = raw.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = raw.strip_prefix("https://") {
            (true, r)
        } else {
            (true, raw)
        };
        let host = rest.trim_end_matches('/');
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid {
            return Err(NotAHost(raw.to_string()));
        }
        Ok(RegistryHost {
            host: host.to_string(),
            https,
        })
    }

    /// Base URL of the registry's HTTP API.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_at_their_digest_or_tag_not_at_a_port() {
        assert_eq!(
            split_image("127.0.0.1:5000/shop-orders@sha256:abc"),
            ("127.0.0.1:5000/shop-orders", Some("sha256:abc"))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/shop-orders:ctx-1"),
            ("127.0.0.1:5000/shop-orders", Some("ctx-1"))
        );
        assert_eq!(
            split_image("127.0.0.1:5000/shop-orders"),
            ("127.0.0.1:5000/shop-orders", None)
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(is_digest(&d));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert_eq!(digest_of(&format!("r/x@{d}")), Some(d.as_str()));
        assert_eq!(digest_of("r/x:ctx-1"), None);
    }

    #[test]
    fn registry_hosts_keep_their_scheme() {
        let h = RegistryHost::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!((h.host.as_str(), h.https), ("127.0.0.1:5000", false));
        assert_eq!(h.base_url(), "http://127.0.0.1:5000");
        let h = RegistryHost::parse("123.dkr.ecr-fips.us-east-1.amazonaws.com").unwrap();
        assert!(h.https);
        assert!(RegistryHost::parse("a b").is_err());
    }
}
