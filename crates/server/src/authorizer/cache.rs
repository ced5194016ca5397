//! The authorizer's decisions kept per value of one cookie (`authorizer.cache: {cookie, ttl}`),
//! so that a signed-in user's every request is not a round trip to the authorizer.
//!
//! Only a 200 is kept: a denial (a redirect to the login page) must be asked again, or a user
//! who just signed in would keep being sent back. A request without that cookie, or with it
//! twice, is never cached; nor is any but a GET or HEAD: a request that changes something (a
//! sign-out, a password change, a form sent) is always the authorizer's to see, which also lets
//! it send a signed-in user's sign-out to its own pages rather than to the tenant of the kept
//! decision. The entries are bounded (`max_entries`); the least recently used
//! goes first. A kept decision outlives a logout by at most `ttl`: the docs say so.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use plexer_fcgi::Params;

use super::Allowed;
use crate::cookie::find_cookie;

/// One decision and when it stops counting.
struct Kept {
    allowed: Arc<Allowed>,
    until: Instant,
}

/// The cache, and what it did, for the status page.
pub(crate) struct DecisionCache {
    entries: Mutex<LruCache<Box<str>, Kept>>,
    ttl: Duration,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl DecisionCache {
    pub(crate) fn new(max_entries: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(max_entries)),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The decision kept for `key` and still valid at `now`; counts a hit or a miss.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Arc<Allowed>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = match entries.get(key) {
            Some(kept) if kept.until > now => Some(Arc::clone(&kept.allowed)),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        };
        drop(entries);
        let counter = match found {
            Some(_) => &self.hits,
            None => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `allowed` for `key` from `now` for the cache's `ttl`.
    pub(crate) fn put(&self, key: &str, allowed: Arc<Allowed>, now: Instant) {
        let kept = Kept {
            allowed,
            until: now + self.ttl,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.put(key.into(), kept);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The request's value of `cookie`, the cache's key: none without a `Cookie` header, when the
/// cookie is missing, empty or there twice, or for a method other than GET and HEAD.
pub(crate) fn key<'a>(params: &'a Params, cookie: &str) -> Option<&'a str> {
    if !matches!(params.get_str("REQUEST_METHOD"), Some("GET" | "HEAD")) {
        return None;
    }
    let header = params.get_str("HTTP_COOKIE")?;
    find_cookie(header, cookie).filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(account: &str) -> Arc<Allowed> {
        Arc::new(Allowed {
            account: Some(account.into()),
            user: None,
            params: Vec::new(),
            dropped: Vec::new(),
        })
    }

    #[test]
    fn a_decision_is_kept_for_ttl_and_counted() {
        let cache = DecisionCache::new(NonZeroUsize::new(8).unwrap(), Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(cache.get("abc", t0), None);
        cache.put("abc", allowed("acme"), t0);
        let hit = cache.get("abc", t0 + Duration::from_secs(29)).unwrap();
        assert_eq!(hit.account.as_deref(), Some("acme"));
        assert_eq!(
            cache.get("abc", t0 + Duration::from_secs(30)),
            None,
            "expired"
        );
        assert_eq!(cache.len(), 0, "an expired entry goes");
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_least_recently_used_goes_first_when_full() {
        let cache = DecisionCache::new(NonZeroUsize::new(2).unwrap(), Duration::from_secs(30));
        let now = Instant::now();
        cache.put("a", allowed("acme"), now);
        cache.put("b", allowed("globex"), now);
        assert!(cache.get("a", now).is_some()); // a is now the most recent
        cache.put("c", allowed("initech"), now);
        assert!(
            cache.get("b", now).is_none(),
            "b was the least recently used"
        );
        assert!(cache.get("a", now).is_some());
        assert!(cache.get("c", now).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_key_is_one_nonempty_value_of_the_cookie() {
        let params = |cookie: &str| -> Params {
            [("REQUEST_METHOD", "GET"), ("HTTP_COOKIE", cookie)]
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        };
        assert_eq!(key(&params("a=1; sessionid=xyz"), "sessionid"), Some("xyz"));
        assert_eq!(key(&params("sessionid=x; sessionid=y"), "sessionid"), None);
        assert_eq!(key(&params("sessionid="), "sessionid"), None);
        assert_eq!(key(&params("other=1"), "sessionid"), None);
        assert_eq!(key(&Params::default(), "sessionid"), None);
        let mut post = params("sessionid=xyz");
        post.set("REQUEST_METHOD", "POST");
        assert_eq!(key(&post, "sessionid"), None, "a POST is always asked");
    }
}
