//! The one ingest path every source takes (HTTP bodies, webhooks, Prometheus, files):
//! check each record's event time against the wall clock, store the records durably,
//! then feed them to the engine.
//!
//! Storing and feeding run in a task of their own that the caller only awaits. A request
//! handler is cancelled when its client disconnects; were the two steps in the handler,
//! a disconnect between them would leave rows stored but unwatched until a restart (and
//! a retried deploy would answer "duplicate" and never be watched). A spawned task is not
//! cancelled with its caller, so a record that is stored is also fed.

use std::sync::atomic::Ordering;

use watchdog_core::{Deploy, LogEvent, Sample, Timestamp};

use crate::error::AppError;
use crate::ingest::body::{Item, Rejection};
use crate::state::AppState;
use crate::store::{NewDeploy, NewRecord};

/// What became of a batch of samples.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Records stored and fed.
    pub accepted: usize,
    /// Of those, how many were older than the engine's watermark: stored and used for
    /// baselines and watches still running, but too late to revise a verdict already given.
    pub late: u64,
    /// Records refused here (event time too far ahead of the clock, over a limit).
    pub rejected: Vec<Rejection>,
}

/// Refuses the items stamped more than `max_future_skew_secs` after the wall clock `now_ms`
/// (a client whose clock is wrong, or a mistyped year), one rejection per item naming how
/// far ahead it is. The rest keep their order.
pub fn check_event_times<T>(
    items: Vec<Item<T>>,
    timestamp: impl Fn(&T) -> Timestamp,
    now_ms: i64,
    max_future_skew_secs: u64,
) -> (Vec<Item<T>>, Vec<Rejection>) {
    let limit_ms = now_ms.saturating_add(max_future_skew_secs.saturating_mul(1000) as i64);
    let mut rejected = Vec::new();
    let kept = items
        .into_iter()
        .filter_map(|item| {
            let t = timestamp(&item.record);
            if t.millis() <= limit_ms {
                return Some(item);
            }
            rejected.push(Rejection {
                index: item.index,
                line: item.line,
                field: "timestamp".into(),
                error: format!(
                    "{t} is {} ahead of the server's clock ({}), more than max_future_skew_secs ({max_future_skew_secs} s) allows; check the sender's clock",
                    ahead_text(t.millis() - now_ms),
                    Timestamp(now_ms),
                ),
            });
            None
        })
        .collect();
    (kept, rejected)
}

fn ahead_text(ms: i64) -> String {
    let secs = ms / 1000;
    if secs >= 86_400 * 365 {
        format!("{} years", secs / (86_400 * 365))
    } else if secs >= 86_400 {
        format!("{} days", secs / 86_400)
    } else if secs >= 3600 {
        format!("{} h {} min", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{secs} s")
    }
}

async fn detached<T: Send + 'static>(
    task: impl std::future::Future<Output = Result<T, AppError>> + Send + 'static,
) -> Result<T, AppError> {
    tokio::spawn(task)
        .await
        .map_err(|e| AppError::Internal(format!("ingest task: {e}")))?
}

fn engine_gone(e: crate::runner::EngineGone) -> AppError {
    AppError::Internal(e.to_string())
}

/// Items for samples made here rather than read from a body (Prometheus pull, the OTLP
/// and remote-write receivers): each one's stored JSON record is written from it, in the
/// shape `POST /api/v1/metrics` takes, so that a restart re-reads it the same way.
pub fn sample_items(samples: Vec<Sample>) -> Vec<Item<Sample>> {
    samples
        .into_iter()
        .enumerate()
        .map(|(index, s)| {
            let mut m = serde_json::Map::new();
            m.insert("timestamp".into(), s.timestamp.to_rfc3339().into());
            m.insert("service".into(), s.service.clone().into());
            m.insert("environment".into(), s.environment.clone().into());
            for (k, v) in &s.metrics {
                m.insert(k.clone(), (*v).into());
            }
            Item {
                raw: serde_json::Value::Object(m).to_string(),
                record: s,
                index,
                line: 0,
            }
        })
        .collect()
}

/// Splits admitted items into the rows to store (keyed by event time, service and
/// environment, with the raw body) and the records to feed.
fn into_rows<T>(
    items: Vec<Item<T>>,
    key: impl Fn(&T) -> (Timestamp, &String, &String),
) -> (Vec<NewRecord>, Vec<T>) {
    items
        .into_iter()
        .map(|i| {
            let (ts, service, environment) = key(&i.record);
            let row = NewRecord {
                ts_ms: ts.millis(),
                service: service.clone(),
                environment: environment.clone(),
                body: i.raw,
            };
            (row, i.record)
        })
        .unzip()
}

/// Checks, stores and feeds metric samples.
///
/// # Errors
/// Store failures or the engine gone; nothing is fed when storing failed.
pub async fn samples(state: &AppState, items: Vec<Item<Sample>>) -> Result<Accepted, AppError> {
    let now_ms = AppState::now_ms();
    let (items, mut rejected) = check_event_times(
        items,
        |s| s.timestamp,
        now_ms,
        state.config.max_future_skew_secs,
    );
    let (items, over) = state.admission.samples(items, now_ms);
    rejected.extend(over);
    let accepted = items.len();
    if accepted == 0 {
        return Ok(Accepted {
            rejected,
            ..Accepted::default()
        });
    }
    let (rows, samples) = into_rows(items, |r| (r.timestamp, &r.service, &r.environment));
    let st = state.clone();
    let late = detached(async move {
        st.store.insert_samples(&rows, now_ms).await?;
        drop(rows);
        st.metrics
            .samples
            .fetch_add(accepted as u64, Ordering::Relaxed);
        let late = st.engine.samples(samples).await.map_err(engine_gone)?;
        st.metrics.late_samples.fetch_add(late, Ordering::Relaxed);
        Ok(late)
    })
    .await?;
    Ok(Accepted {
        accepted,
        late,
        rejected,
    })
}

/// Checks, stores and feeds log events.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn logs(state: &AppState, items: Vec<Item<LogEvent>>) -> Result<Accepted, AppError> {
    let now_ms = AppState::now_ms();
    let (items, mut rejected) = check_event_times(
        items,
        |l| l.timestamp,
        now_ms,
        state.config.max_future_skew_secs,
    );
    let (items, over) = state.admission.logs(items, now_ms);
    rejected.extend(over);
    let accepted = items.len();
    if accepted == 0 {
        return Ok(Accepted {
            rejected,
            ..Accepted::default()
        });
    }
    let (rows, events) = into_rows(items, |r| (r.timestamp, &r.service, &r.environment));
    let st = state.clone();
    detached(async move {
        st.store.insert_logs(&rows).await?;
        st.metrics
            .logs
            .fetch_add(accepted as u64, Ordering::Relaxed);
        st.engine.logs(events).await.map_err(engine_gone)
    })
    .await?;
    Ok(Accepted {
        accepted,
        late: 0,
        rejected,
    })
}

/// Stores deploys and feeds the new ones to the engine. Returns each one's row id, `None`
/// for a deploy that was already stored (a retried notification). Event times are the
/// caller's to check ([`check_event_times`]): a webhook's deploy is stamped by the
/// forge, not by a client clock.
///
/// # Errors
/// Store failures or the engine gone.
pub async fn deploys(
    state: &AppState,
    deploys: Vec<Deploy>,
    source: &str,
) -> Result<Vec<Option<i64>>, AppError> {
    let rows: Vec<NewDeploy> = deploys
        .iter()
        .map(|d| NewDeploy {
            deploy: d.clone(),
            source: source.to_string(),
        })
        .collect();
    let st = state.clone();
    let source = source.to_string();
    detached(async move {
        let ids = st.store.insert_deploys(&rows, AppState::now_ms()).await?;
        let fresh: Vec<Deploy> = deploys
            .into_iter()
            .zip(&ids)
            .filter_map(|(d, id)| id.map(|_| d))
            .collect();
        if !fresh.is_empty() {
            st.metrics
                .deploys
                .fetch_add(fresh.len() as u64, Ordering::Relaxed);
            for d in &fresh {
                tracing::info!(deploy_id = %d.deploy_id, service = %d.service, environment = %d.environment, source, "deploy");
            }
            st.engine.deploys(fresh).await.map_err(engine_gone)?;
        }
        Ok(ids)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(t_ms: i64, index: usize) -> Item<Timestamp> {
        Item {
            record: Timestamp(t_ms),
            raw: String::new(),
            index,
            line: index + 1,
        }
    }

    #[test]
    fn items_ahead_of_the_clock_are_refused_one_by_one() {
        let now = 1_790_000_000_000;
        let items = vec![
            item(now - 60_000, 0),
            item(now + 3_600_000, 1),
            item(now + 299_000, 2),
            item(253_402_300_799_000, 3),
        ];
        let (kept, rejected) = check_event_times(items, |t| *t, now, 300);
        assert_eq!(kept.iter().map(|i| i.index).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(rejected.len(), 2);
        assert_eq!((rejected[0].index, rejected[0].line), (1, 2));
        assert_eq!(rejected[0].field, "timestamp");
        assert!(
            rejected[0].error.contains("1 h 0 min ahead")
                && rejected[0].error.contains("max_future_skew_secs (300 s)"),
            "{}",
            rejected[0].error
        );
        assert!(
            rejected[1].error.contains("years ahead"),
            "{}",
            rejected[1].error
        );
    }
}
