//! Single-use, expiring tokens: the only authentication of a streaming URL (kubelet's
//! `requestCache`: 8 random bytes in URL-safe base64, one minute to live).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// Tokens waiting to be used at once; past this the oldest is dropped (kubelet refuses new
/// requests instead; dropping the oldest keeps the CRI calls infallible and bounds memory).
pub const MAX_IN_FLIGHT: usize = 1000;
const TOKEN_BYTES: usize = 8;

/// A cache of requests by token.
pub struct TokenCache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T> TokenCache<T> {
    pub fn new(ttl: Duration) -> Self {
        TokenCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// Stores `value` under a new random token and returns the token.
    pub fn insert(&self, value: T) -> String {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (expires, _)| *expires > now);
        while entries.len() >= MAX_IN_FLIGHT {
            let oldest = entries.iter().min_by_key(|(_, (expires, _))| *expires).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        loop {
            let token = new_token();
            if !entries.contains_key(&token) {
                entries.insert(token.clone(), (now + self.ttl, value));
                return token;
            }
        }
    }

    /// The request stored under `token`, left in place: `None` if unknown or expired.
    pub fn peek(&self, token: &str) -> Option<T>
    where
        T: Clone,
    {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, value) = entries.get(token)?;
        (*expires > Instant::now()).then(|| value.clone())
    }

    /// Takes the request stored under `token`: `None` if unknown, already used or expired.
    pub fn consume(&self, token: &str) -> Option<T> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, value) = entries.remove(token)?;
        (expires > Instant::now()).then_some(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The right to spend a token, used once the upgrade is certain: a refused upgrade (say a
/// websocket subprotocol this server lacks) leaves the URL valid for the client's fallback.
pub struct Claim(Box<dyn FnOnce() -> bool + Send>);

impl Claim {
    pub fn new(take: impl FnOnce() -> bool + Send + 'static) -> Claim {
        Claim(Box::new(take))
    }

    /// Spends the token; false if it was spent (or expired) meanwhile.
    pub fn take(self) -> bool {
        (self.0)()
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("the kernel's random source (getrandom(2)) is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_used_once() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let token = cache.insert(7);
        assert_eq!(token.len(), 11, "8 bytes in unpadded base64");
        assert_eq!(cache.peek(&token), Some(7));
        assert_eq!(cache.consume(&token), Some(7));
        assert_eq!(cache.peek(&token), None);
        assert_eq!(cache.consume(&token), None);
        assert_eq!(cache.consume("nonsense"), None);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let cache = TokenCache::new(Duration::from_millis(1));
        let token = cache.insert(1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.peek(&token), None);
        assert_eq!(cache.consume(&token), None);
    }

    #[test]
    fn tokens_differ_and_the_cache_is_bounded() {
        let cache = TokenCache::new(Duration::from_secs(60));
        let first = cache.insert(0);
        let mut seen = std::collections::HashSet::new();
        for i in 1..=MAX_IN_FLIGHT {
            assert!(seen.insert(cache.insert(i)));
        }
        assert_eq!(cache.len(), MAX_IN_FLIGHT);
        assert_eq!(cache.consume(&first), None, "the oldest token made room");
    }
}
