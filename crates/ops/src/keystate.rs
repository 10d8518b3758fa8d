//! The state a step keeps per key, bounded (seed 003's contract): `key_ttl` drops a key's
//! state when no row of it came for that long, `max_keys` drops the least recently seen key's
//! beyond that many. Both are counted; without them every key is kept.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::registry::Options;

/// Per-key state with idle expiry and a bound on the number of keys.
pub struct KeyStates<S> {
    map: HashMap<String, (S, u64, Instant)>,
    /// Keys by the tick they were last seen (least recent first).
    order: BTreeMap<u64, String>,
    tick: u64,
    max_keys: Option<usize>,
    ttl: Option<Duration>,
    /// Keys dropped for being idle longer than the ttl.
    pub expired: u64,
    /// Keys dropped beyond `max_keys`.
    pub evicted: u64,
    /// Keep the states dropped (for a step that must still give what they hold).
    keep_dropped: bool,
    dropped: Vec<(String, S)>,
}

impl<S> KeyStates<S> {
    /// Keys kept now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No key is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A key's state, if held, without touching it.
    pub fn peek(&self, key: &str) -> Option<&S> {
        self.map.get(key).map(|(s, ..)| s)
    }

    /// Keep the states the bounds drop, for [`KeyStates::take_dropped`].
    pub fn keeping_dropped(mut self) -> Self {
        self.keep_dropped = true;
        self
    }

    /// The states the bounds dropped since the last call (with `keeping_dropped`).
    pub fn take_dropped(&mut self) -> Vec<(String, S)> {
        std::mem::take(&mut self.dropped)
    }

    /// Every key's state, least recently seen first; none are kept.
    pub fn drain(&mut self) -> Vec<(String, S)> {
        let mut all: Vec<(String, S, u64)> =
            self.map.drain().map(|(k, (s, t, _))| (k, s, t)).collect();
        self.order.clear();
        all.sort_by_key(|(_, _, t)| *t);
        all.into_iter().map(|(k, s, _)| (k, s)).collect()
    }

    /// The keys held and dropped so far.
    pub fn counts(&self) -> streamprep_core::KeyCounts {
        streamprep_core::KeyCounts {
            live: self.map.len() as u64,
            expired: self.expired,
            evicted: self.evicted,
        }
    }
}

impl<S: Default> KeyStates<S> {
    /// Bounded by the options `max_keys` (0: none) and `key_ttl` ("5m"; "": none).
    pub fn from_options(o: &Options) -> Result<Self, String> {
        let max_keys = usize::try_from(o.integer("max_keys")).unwrap_or(0);
        let ttl = match o.text("key_ttl").trim() {
            "" => None,
            t => Some(crate::exec::parse_duration(t).ok_or_else(|| {
                format!("key_ttl = {t:?}: give a duration such as \"5m\" or \"30s\"")
            })?),
        };
        Ok(KeyStates {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            max_keys: (max_keys > 0).then_some(max_keys),
            ttl,
            expired: 0,
            evicted: 0,
            keep_dropped: false,
            dropped: Vec::new(),
        })
    }

    /// Drop the keys idle longer than the ttl (call once a message, before its rows).
    pub fn expire(&mut self, now: Instant) {
        let Some(ttl) = self.ttl else { return };
        while let Some((&t, key)) = self.order.iter().next() {
            let idle = self
                .map
                .get(key)
                .is_some_and(|(_, _, seen)| now.duration_since(*seen) > ttl);
            if !idle {
                break;
            }
            let key = key.clone();
            self.order.remove(&t);
            if let Some((s, ..)) = self.map.remove(&key) {
                if self.keep_dropped {
                    self.dropped.push((key.clone(), s));
                }
            }
            self.expired += 1;
            tracing::debug!(target: "streamprep::state", "key {key:?} idle longer than {ttl:?}: its state is dropped");
        }
    }

    /// The state of `key`, seen now (made fresh when new; beyond `max_keys` the least
    /// recently seen key's state is dropped).
    pub fn get(&mut self, key: &str, now: Instant) -> &mut S {
        self.tick += 1;
        let tick = self.tick;
        let bounded = self.max_keys.is_some() || self.ttl.is_some();
        if let Some((_, t, seen)) = self.map.get_mut(key) {
            if bounded {
                self.order.remove(t);
                self.order.insert(tick, key.to_string());
            }
            *t = tick;
            *seen = now;
        } else {
            if let Some(max) = self.max_keys {
                while self.map.len() >= max {
                    let Some((&t, _)) = self.order.iter().next() else {
                        break;
                    };
                    if let Some(old) = self.order.remove(&t) {
                        if let Some((s, ..)) = self.map.remove(&old) {
                            if self.keep_dropped {
                                self.dropped.push((old, s));
                            }
                        }
                        self.evicted += 1;
                    }
                }
            }
            if bounded {
                self.order.insert(tick, key.to_string());
            }
            self.map.insert(key.to_string(), (S::default(), tick, now));
        }
        &mut self.map.get_mut(key).expect("inserted above").0
    }
}

impl<S: Default + serde::Serialize + serde::de::DeserializeOwned> KeyStates<S> {
    /// Every key's state, least recently seen first (CBOR: floats keep every bit, NaN too).
    pub fn save(&self) -> Vec<u8> {
        let mut keys: Vec<(&String, &S, u64)> =
            self.map.iter().map(|(k, (s, t, _))| (k, s, *t)).collect();
        keys.sort_by_key(|(_, _, t)| *t);
        let keys: Vec<(&String, &S)> = keys.into_iter().map(|(k, s, _)| (k, s)).collect();
        let mut out = Vec::new();
        // writing to a Vec cannot fail
        let _ = ciborium::into_writer(&keys, &mut out);
        out
    }

    /// Saved keys one by one, each as [`KeyStates::save`] gives a single key.
    pub fn split(saved: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let keys: Vec<(String, S)> = ciborium::from_reader(saved)
            .map_err(|e| format!("the saved state does not read: {e}"))?;
        Ok(keys
            .into_iter()
            .map(|(k, s)| {
                let mut out = Vec::new();
                let _ = ciborium::into_writer(&[(&k, &s)], &mut out);
                (k, out)
            })
            .collect())
    }

    /// Take back saved keys (those `keep` accepts), as seen now, in their saved order (so
    /// `max_keys` keeps the most recent).
    pub fn load(&mut self, saved: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<(), String> {
        let keys: Vec<(String, S)> = ciborium::from_reader(saved)
            .map_err(|e| format!("the saved state does not read: {e}"))?;
        let now = Instant::now();
        for (k, s) in keys {
            if keep(&k) {
                *self.get(&k, now) = s;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(max: i64, ttl: &str) -> KeyStates<u32> {
        let mut m = serde_json::Map::new();
        m.insert("max_keys".into(), max.into());
        m.insert("key_ttl".into(), ttl.into());
        KeyStates::from_options(&Options::from_map(m)).expect("options")
    }

    #[test]
    fn the_least_recently_seen_key_goes_first_and_idle_keys_expire() {
        let now = Instant::now();
        let mut s = states(2, "");
        *s.get("a", now) += 1;
        *s.get("b", now) += 1;
        *s.get("a", now) += 1; // a is recent now
        *s.get("c", now) += 1; // b goes
        assert_eq!((s.len(), s.evicted), (2, 1));
        assert_eq!(*s.get("a", now), 2, "a kept its state");
        assert_eq!(*s.get("b", now), 0, "b starts afresh");
        let mut s = states(0, "1s");
        *s.get("a", now) += 1;
        *s.get("b", now + Duration::from_millis(800)) += 1;
        s.expire(now + Duration::from_millis(1500));
        assert_eq!((s.len(), s.expired), (1, 1));
        assert_eq!(*s.get("b", now), 1);
        assert_eq!(*s.get("a", now), 0, "a starts afresh after expiring");
        // a million keys through a bound of 1000: never more than 1000 kept
        let mut s = states(1000, "");
        for k in 0..1_000_000 {
            *s.get(&k.to_string(), now) += 1;
        }
        assert_eq!((s.len(), s.evicted), (1000, 999_000));
    }
}
