//! The live monitor: a thread beside every run that samples its metrics once a second
//! (arrival rates, measured and predicted rho, the saturation warning) and turns a source's
//! or broker's link going down or up into events, whoever hosts the run.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::events::Event;
use crate::stats::Stats;

/// How often the monitor wakes to see whether a second has passed (and how late a run's end
/// can find it asleep: not at all, the end wakes it).
const TICK: Duration = Duration::from_millis(200);

/// Sample `stats` each second until `done` closes.
pub(crate) fn watch(stats: &Stats, done: Receiver<()>) {
    let mut last = Instant::now();
    let mut links: Vec<(bool, u64)> = Vec::with_capacity(2);
    stats.metrics.sample(stats.snapshot());
    while let Err(RecvTimeoutError::Timeout) = done.recv_timeout(TICK) {
        // no allocation on a tick: a thread that allocates gets an allocator heap of its own
        let mut changed = Vec::new();
        {
            let held = stats.links.lock().unwrap_or_else(|e| e.into_inner());
            for (i, (name, l)) in held.iter().enumerate() {
                let now = (
                    l.connected.load(std::sync::atomic::Ordering::Relaxed),
                    l.disconnects.load(std::sync::atomic::Ordering::Relaxed),
                );
                match links.get_mut(i) {
                    Some(before) if *before != now => {
                        *before = now;
                        changed.push((name.clone(), now));
                    }
                    Some(_) => {}
                    None => links.push(now),
                }
            }
        }
        // the connector itself logs why and what it does about it
        for (link, (connected, disconnects)) in changed {
            stats.events.push(Event::Link {
                link,
                connected,
                disconnects,
            });
        }
        if last.elapsed() < Duration::from_millis(950) {
            continue;
        }
        last = Instant::now();
        if let Some(w) = stats.metrics.sample(stats.snapshot()) {
            stats.warn(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    #[test]
    fn a_link_going_down_and_up_is_two_events_and_the_end_wakes_the_monitor() {
        let stats = Stats::default();
        let link = Arc::new(streamprep_core::LinkHealth::default());
        link.connected.store(true, Relaxed);
        stats
            .links
            .lock()
            .expect("lock")
            .push(("source".into(), link.clone()));
        let events = stats.events.subscribe();
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        std::thread::scope(|s| {
            s.spawn(|| watch(&stats, rx));
            std::thread::sleep(TICK * 2);
            link.connected.store(false, Relaxed);
            link.disconnects.fetch_add(1, Relaxed);
            std::thread::sleep(TICK * 3);
            link.connected.store(true, Relaxed);
            std::thread::sleep(TICK * 3);
            drop(tx);
        });
        let links: Vec<(bool, u64)> = events
            .try_iter()
            .filter_map(|s| match s.event {
                Event::Link {
                    connected,
                    disconnects,
                    ..
                } => Some((connected, disconnects)),
                _ => None,
            })
            .collect();
        assert_eq!(links, vec![(false, 1), (true, 1)]);
        assert!(stats.metrics.live().samples >= 1, "sampled each second");
    }
}
