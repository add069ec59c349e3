//! Who may read the metrics over HTTPS: the holder of a bearer token that the API server
//! authenticates (TokenReview) and authorises for `get` on the path (SubjectAccessReview with
//! non-resource attributes), as controller-runtime's metrics filter and kube-rbac-proxy do. The
//! ServiceMonitor presents the `file-integrity-operator-metrics` service account's token, which
//! `deploy/monitoring/metrics_rbac.yaml` allows `get` on `/metrics` and `/metrics-fio`.
//!
//! Verdicts are cached for a short while per (token digest, path), so a scrape every 30 s costs
//! the API server two reviews per minute at most per token, and a flood of bad tokens is
//! bounded by the cache size and the connection cap, not by the API server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::Api;

/// How long a verdict is reused.
const TTL: Duration = Duration::from_secs(30);
/// Cached verdicts at most; when full, the cache starts afresh.
const CACHE_ENTRIES: usize = 1024;
/// A token longer than this is refused without asking the API server.
const MAX_TOKEN: usize = 16 * 1024;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No bearer token, or one the API server does not authenticate: 401.
    Unauthenticated,
    /// Authenticated, but not allowed `get` on the path: 403.
    Forbidden,
    /// The API server could not be asked: 503, not cached.
    Unavailable,
}

/// Reviews bearer tokens with the API server, as the operator's service account (which needs
/// `create` on `tokenreviews` and `subjectaccessreviews`: `deploy/rbac`).
#[derive(Clone)]
pub struct Reviewer {
    client: kube::Client,
    cache: Arc<Mutex<Cache>>,
}

/// (SHA-256 of the token, path) -> when decided, and the verdict.
type Cache = HashMap<(String, String), (Instant, Verdict)>;

impl Reviewer {
    pub fn new(client: kube::Client) -> Reviewer {
        Reviewer {
            client,
            cache: Arc::default(),
        }
    }

    /// The verdict for a request to `path` with this `Authorization` header value.
    pub async fn review(&self, authorization: Option<&[u8]>, path: &str) -> Verdict {
        let Some(token) = authorization
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN)
        else {
            return Verdict::Unauthenticated;
        };
        let key = (
            fio_core::hash::sha256_hex(token.as_bytes()),
            path.to_owned(),
        );
        if let Some(v) = self.cached(&key) {
            return v;
        }
        let verdict = self.ask(token, path).await;
        if verdict != Verdict::Unavailable {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), verdict));
        }
        verdict
    }

    fn cached(&self, key: &(String, String)) -> Option<Verdict> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| *v)
    }

    async fn ask(&self, token: &str, path: &str) -> Verdict {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                // The API server's own audiences, which a service account token carries.
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = match Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("metrics: TokenReview failed: {e}");
                return Verdict::Unavailable;
            }
        };
        let status = reviewed.status.unwrap_or_default();
        let user = match status.user {
            Some(u) if status.authenticated == Some(true) => u,
            _ => return Verdict::Unauthenticated,
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_owned()),
                    verb: Some("get".to_owned()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => Verdict::Allowed,
            Ok(_) => {
                tracing::info!(
                    "metrics: {} may not get {path}",
                    user.username.as_deref().unwrap_or("?")
                );
                Verdict::Forbidden
            }
            Err(e) => {
                tracing::warn!("metrics: SubjectAccessReview failed: {e}");
                Verdict::Unavailable
            }
        }
    }
}
