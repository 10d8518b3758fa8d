//! State that survives a stop: the per-key state of a chain's steps (running scalers,
//! windows) saved when a run ends and given back to the next run of the same chain. The host
//! keeps the bytes (`run`: a file beside the output; `serve`: its store); a changed chain or key
//! makes them useless, and the run says so and starts afresh.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Where a run finds its saved state when it starts and leaves it when it ends.
pub type StateSlot = Arc<Mutex<Option<Vec<u8>>>>;

const VERSION: u32 = 1;

/// The saved state of a run's chains.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedState {
    /// The format's version.
    pub version: u32,
    /// The chain it was saved from (entries with their options).
    pub chain: Vec<String>,
    /// The key the run was keyed by.
    pub key: Option<String>,
    /// Per step, what each worker's instance saved.
    pub steps: Vec<Vec<Vec<u8>>>,
}

impl SavedState {
    /// The chains' states (one `save_state` a chain), for `chain` keyed by `key`; `None` when
    /// no step keeps state.
    pub fn gather(
        chain: &[String],
        key: Option<&str>,
        chains: Vec<Vec<Option<Vec<u8>>>>,
    ) -> Option<Self> {
        let mut steps: Vec<Vec<Vec<u8>>> = vec![Vec::new(); chain_len(&chains)];
        for c in chains {
            for (i, s) in c.into_iter().enumerate() {
                if let Some(s) = s {
                    steps[i].push(s);
                }
            }
        }
        steps.iter().any(|s| !s.is_empty()).then(|| SavedState {
            version: VERSION,
            chain: chain.to_vec(),
            key: key.map(str::to_string),
            steps,
        })
    }

    /// As bytes (CBOR).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Read saved bytes for a run of `chain` keyed by `key`: the state, or why it cannot be
    /// used (written for another chain or key, or not a saved state).
    pub fn read(bytes: &[u8], chain: &[String], key: Option<&str>) -> Result<Self, String> {
        let s: SavedState = ciborium::from_reader(bytes)
            .map_err(|e| format!("the saved state does not read ({e})"))?;
        if s.version != VERSION {
            return Err(format!(
                "the saved state is of version {}, this streamprep reads {VERSION}",
                s.version
            ));
        }
        if s.chain != chain {
            return Err(format!(
                "the saved state is of another chain ({}), this run's is {}",
                s.chain.join(", "),
                chain.join(", ")
            ));
        }
        if s.key.as_deref() != key {
            return Err(format!(
                "the saved state is keyed by {}, this run by {}",
                s.key.as_deref().unwrap_or("nothing"),
                key.unwrap_or("nothing")
            ));
        }
        Ok(s)
    }
}

/// One key's state as a chain of it gives it (per step), as bytes (the queue method's tasks
/// and results carry it).
pub fn key_state_to_bytes(state: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::into_writer(&state, &mut out);
    out
}

/// [`key_state_to_bytes`] back; no bytes: a key seen for the first time.
pub fn key_state_from_bytes(bytes: &[u8]) -> Result<Vec<Option<Vec<u8>>>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    ciborium::from_reader(bytes).map_err(|e| format!("a key's state does not read ({e})"))
}

fn chain_len(chains: &[Vec<Option<Vec<u8>>>]) -> usize {
    chains.iter().map(Vec::len).max().unwrap_or(0)
}
