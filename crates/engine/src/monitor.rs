//! The live monitor: a thread beside every run that samples its metrics once a second
//! (arrival rates, measured and predicted rho, the saturation warning) and turns a source's
//! or broker's link going down or up into events, whoever hosts the run.

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::events::Event;
use crate::stats::Stats;

/// How often the monitor wakes to see whether a second has passed (and how late a run's end
/// can find it asleep: not at all, the end wakes it).
const TICK: Duration = Duration::from_millis(200);

/// Sample `stats` each second until `done` is set (and the thread unparked).
///
/// The monitor allocates nothing on its ticks (it parks instead of waiting on a channel, and
/// enters the run's `span` only to log): a thread that allocates costs the process an
/// allocator heap of its own, megabytes with mimalloc's eager commit.
pub(crate) fn watch(stats: &Stats, done: &AtomicBool, span: &tracing::Span) {
    let mut last = Instant::now();
    let mut links: [Option<(bool, u64)>; 4] = [None; 4];
    stats.metrics.sample(stats.snapshot());
    loop {
        std::thread::park_timeout(TICK);
        if done.load(Ordering::SeqCst) {
            break;
        }
        // no allocation on a tick: a thread that allocates gets an allocator heap of its own
        let mut changed = Vec::new();
        {
            let held = stats.links.lock().unwrap_or_else(|e| e.into_inner());
            for ((name, l), before) in held.iter().zip(links.iter_mut()) {
                let now = (
                    l.connected.load(Ordering::Relaxed),
                    l.disconnects.load(Ordering::Relaxed),
                );
                match before {
                    Some(b) if *b != now => {
                        *b = now;
                        changed.push((name.clone(), now));
                    }
                    Some(_) => {}
                    None => *before = Some(now),
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
            let _run = span.enter();
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
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let m = s.spawn(|| watch(&stats, &done, &tracing::Span::none()));
            std::thread::sleep(TICK * 2);
            link.connected.store(false, Relaxed);
            link.disconnects.fetch_add(1, Relaxed);
            std::thread::sleep(TICK * 3);
            link.connected.store(true, Relaxed);
            std::thread::sleep(TICK * 3);
            done.store(true, Ordering::SeqCst);
            m.thread().unpark();
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
