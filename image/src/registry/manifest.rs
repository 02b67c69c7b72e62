//! Fetching a manifest or index, verified against its digest, with its media type.

use std::io::Read;

use crate::digest::Digest;
use crate::layout::MAX_MANIFEST_SIZE;
use crate::oci::{self, Descriptor};

use super::session::Session;
use super::RegistryError;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

impl Session<'_> {
    /// Fetches a manifest or index by tag or digest: (bytes, media type, digest).
    pub(super) fn manifest(
        &mut self,
        reference: &str,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, String, Digest), RegistryError> {
        let resp = self.get(&format!("/manifests/{reference}"), Some(ACCEPT))?;
        let ctype = resp.content_type().to_owned();
        let url = resp.get_url().to_owned();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut body)
            .map_err(|e| RegistryError::Transport { url: url.clone(), msg: e.to_string() })?;
        if body.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(RegistryError::Invalid(format!("{url}: manifest larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        let digest = Digest::sha256_of(&body);
        if let Some(d) = expected {
            let mut h = crate::digest::Hasher::new();
            h.update(&body);
            h.verify(Some(&d.digest), Some(d.size))
                .map_err(|e| RegistryError::Invalid(format!("manifest {reference}: {e}")))?;
        } else if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(RegistryError::Invalid(format!("manifest {reference}: digest mismatch: got {digest}")));
            }
        }
        // The media type: from the document, else from Content-Type.
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let p: Probe = serde_json::from_slice(&body).map_err(|e| RegistryError::Invalid(format!("{url}: {e}")))?;
        let mt = p.media_type.unwrap_or_else(|| {
            if p.manifests.is_some() {
                oci::MEDIA_TYPE_OCI_INDEX.to_owned()
            } else if oci::is_manifest_media_type(&ctype) || oci::is_index_media_type(&ctype) {
                ctype
            } else {
                oci::MEDIA_TYPE_OCI_MANIFEST.to_owned()
            }
        });
        Ok((body, mt, digest))
    }
}
