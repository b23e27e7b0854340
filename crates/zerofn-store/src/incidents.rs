//! Incidents the detectors opened (with their evidence, the actions the response loop took and
//! how an operator resolved them) and the functions in quarantine. A quarantine is a row here so
//! that a restart keeps the function out of service until an operator releases it.

use crate::{Store, StoreError};
use rusqlite::{OptionalExtension, params};

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IncidentRecord {
    /// `inc-<UUIDv7>`.
    pub id: String,
    pub app: String,
    pub function: String,
    /// The version that was serving when the offending event happened.
    pub version_id: Option<String>,
    pub detector: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub summary: String,
    /// Ids of the audit events that are the evidence, oldest first; the last is the offending one.
    pub evidence: Vec<i64>,
    /// When the offending event happened (start of time to detect).
    pub offending_ms: i64,
    /// When the incident was opened (end of time to detect, start of time to respond).
    pub opened_ms: i64,
    /// What the response loop did, in order.
    pub actions: Vec<IncidentAction>,
    /// When the first action was in force (end of time to respond); `None` if none was.
    pub responded_ms: Option<i64>,
    /// `open` or `resolved`.
    pub status: String,
    /// `true-positive` or `false-positive` once resolved.
    pub resolution: Option<String>,
    pub resolved_ms: Option<i64>,
    /// Who resolved it: `operator:<name>` or `local` (the control socket).
    pub resolved_by: Option<String>,
    pub note: Option<String>,
}

/// One response action taken for an incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentAction {
    /// `quarantine`, `revoke-leases`, `rollback` or `alert`.
    pub action: String,
    /// `success` (in force), `failure`, or `skipped` (not applicable; `detail` says why).
    pub outcome: String,
    pub at_ms: i64,
    pub detail: String,
}

/// Which incidents to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IncidentQuery {
    /// `open` or `resolved`.
    pub status: Option<String>,
    pub app: Option<String>,
    pub function: Option<String>,
    /// At most this many, newest first (default 100, at most 10 000).
    pub limit: Option<u32>,
}

/// A function that may not serve until released.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantineRecord {
    pub app: String,
    pub function: String,
    /// The incident that put it there.
    pub incident_id: String,
    pub since_ms: i64,
}

const SELECT: &str = "SELECT id, app, function, version_id, detector, severity, summary, evidence,
    offending_ms, opened_ms, actions, responded_ms, status, resolution, resolved_ms, resolved_by,
    note FROM incidents";

impl Store {
    /// Records a new, open incident (its `actions` and resolution are ignored).
    pub fn open_incident(&self, incident: &IncidentRecord) -> Result<(), StoreError> {
        let evidence = serde_json::to_string(&incident.evidence)
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        self.connection().execute(
            "INSERT INTO incidents (id, app, function, version_id, detector, severity, summary,
                 evidence, offending_ms, opened_ms, actions, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '[]', 'open')",
            params![
                incident.id,
                incident.app,
                incident.function,
                incident.version_id,
                incident.detector,
                incident.severity,
                incident.summary,
                evidence,
                incident.offending_ms,
                incident.opened_ms
            ],
        )?;
        Ok(())
    }

    /// The incident `id`.
    pub fn incident(&self, id: &str) -> Result<Option<IncidentRecord>, StoreError> {
        self.connection()
            .query_row(&format!("{SELECT} WHERE id = ?1"), params![id], row_to_raw)
            .optional()?
            .map(RawIncident::decode)
            .transpose()
    }

    /// Incidents matching `query`, newest first.
    pub fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentRecord>, StoreError> {
        let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "{SELECT} WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR app = ?2)
                 AND (?3 IS NULL OR function = ?3)
             ORDER BY opened_ms DESC, id DESC LIMIT {limit}"
        ))?;
        let rows =
            statement.query_map(params![query.status, query.app, query.function], row_to_raw)?;
        rows.map(|row| row.map_err(StoreError::from).and_then(RawIncident::decode))
            .collect()
    }

    /// Every incident, oldest first (for the loop's figures).
    pub fn all_incidents(&self) -> Result<Vec<IncidentRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!("{SELECT} ORDER BY opened_ms, id"))?;
        let rows = statement.query_map([], row_to_raw)?;
        rows.map(|row| row.map_err(StoreError::from).and_then(RawIncident::decode))
            .collect()
    }

    /// Appends `action` to incident `id`; when it is `in_force` and none was before, its time
    /// becomes the incident's `responded_ms` (and this returns true). One transaction, so
    /// concurrent actions of one incident cannot lose each other.
    pub fn record_incident_action(
        &self,
        id: &str,
        action: &IncidentAction,
        in_force: bool,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let current: Option<(String, Option<i64>)> = transaction
            .query_row(
                "SELECT actions, responded_ms FROM incidents WHERE id = ?1",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((actions, responded_ms)) = current else {
            return Err(StoreError::UnknownIncident(id.to_string()));
        };
        let mut actions: Vec<IncidentAction> =
            serde_json::from_str(&actions).map_err(|e| StoreError::Malformed(e.to_string()))?;
        actions.push(action.clone());
        let actions =
            serde_json::to_string(&actions).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let first = in_force && responded_ms.is_none();
        transaction.execute(
            "UPDATE incidents SET actions = ?2, responded_ms = COALESCE(responded_ms, ?3)
             WHERE id = ?1",
            params![id, actions, first.then_some(action.at_ms)],
        )?;
        transaction.commit()?;
        Ok(first)
    }

    /// Resolves open incident `id` as `resolution` (`true-positive` or `false-positive`), in
    /// one statement so that two resolutions cannot both pass. Returns the resolved incident.
    pub fn resolve_incident(
        &self,
        id: &str,
        resolution: &str,
        by: &str,
        note: Option<&str>,
        at_ms: i64,
    ) -> Result<IncidentRecord, StoreError> {
        let changed = self.connection().execute(
            "UPDATE incidents SET status = 'resolved', resolution = ?2, resolved_by = ?3,
                 note = ?4, resolved_ms = ?5
             WHERE id = ?1 AND status = 'open'",
            params![id, resolution, by, note, at_ms],
        )?;
        let incident = self
            .incident(id)?
            .ok_or_else(|| StoreError::UnknownIncident(id.to_string()))?;
        if changed == 0 {
            return Err(StoreError::IncidentAlreadyResolved {
                id: id.to_string(),
                resolution: incident.resolution.unwrap_or_default(),
                by: incident.resolved_by.unwrap_or_default(),
            });
        }
        Ok(incident)
    }

    /// Puts `function` of `app` in quarantine for `incident_id`; false if it already is (the
    /// first incident stays the reason).
    pub fn quarantine(&self, record: &QuarantineRecord) -> Result<bool, StoreError> {
        let changed = self.connection().execute(
            "INSERT OR IGNORE INTO quarantines (app, function, incident_id, since_ms)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                record.app,
                record.function,
                record.incident_id,
                record.since_ms
            ],
        )?;
        Ok(changed == 1)
    }

    /// Takes `function` of `app` out of quarantine; the quarantine it was in, if any.
    pub fn release(
        &self,
        app: &str,
        function: &str,
    ) -> Result<Option<QuarantineRecord>, StoreError> {
        Ok(self
            .connection()
            .query_row(
                "DELETE FROM quarantines WHERE app = ?1 AND function = ?2
                 RETURNING app, function, incident_id, since_ms",
                params![app, function],
                row_to_quarantine,
            )
            .optional()?)
    }

    /// Every function in quarantine.
    pub fn quarantines(&self) -> Result<Vec<QuarantineRecord>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT app, function, incident_id, since_ms FROM quarantines ORDER BY app, function",
        )?;
        let rows = statement.query_map([], row_to_quarantine)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many audit events were denied, by kind and reason (the rule), most frequent first.
    /// A full scan: for reports, not for the request path.
    pub fn denials_by_rule(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT kind, COALESCE(json_extract(event, '$.reason'), ''), COUNT(*)
             FROM audit_events WHERE outcome = 'denied'
             GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row_to_quarantine(row: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantineRecord> {
    Ok(QuarantineRecord {
        app: row.get(0)?,
        function: row.get(1)?,
        incident_id: row.get(2)?,
        since_ms: row.get(3)?,
    })
}

/// A row before its JSON columns are decoded (decoding errors are the store's, not SQLite's).
struct RawIncident {
    record: IncidentRecord,
    evidence: String,
    actions: String,
}

impl RawIncident {
    fn decode(self) -> Result<IncidentRecord, StoreError> {
        let mut record = self.record;
        record.evidence = serde_json::from_str(&self.evidence)
            .map_err(|e| StoreError::Malformed(format!("incident {}: evidence: {e}", record.id)))?;
        record.actions = serde_json::from_str(&self.actions)
            .map_err(|e| StoreError::Malformed(format!("incident {}: actions: {e}", record.id)))?;
        Ok(record)
    }
}

fn row_to_raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawIncident> {
    Ok(RawIncident {
        record: IncidentRecord {
            id: row.get(0)?,
            app: row.get(1)?,
            function: row.get(2)?,
            version_id: row.get(3)?,
            detector: row.get(4)?,
            severity: row.get(5)?,
            summary: row.get(6)?,
            evidence: Vec::new(),
            offending_ms: row.get(8)?,
            opened_ms: row.get(9)?,
            actions: Vec::new(),
            responded_ms: row.get(11)?,
            status: row.get(12)?,
            resolution: row.get(13)?,
            resolved_ms: row.get(14)?,
            resolved_by: row.get(15)?,
            note: row.get(16)?,
        },
        evidence: row.get(7)?,
        actions: row.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: &str, app: &str) -> IncidentRecord {
        IncidentRecord {
            id: id.into(),
            app: app.into(),
            function: "f".into(),
            version_id: Some("v1".into()),
            detector: "new-egress-destination".into(),
            severity: "high".into(),
            summary: "s".into(),
            evidence: vec![3, 7],
            offending_ms: 100,
            opened_ms: 110,
            actions: Vec::new(),
            responded_ms: None,
            status: "open".into(),
            resolution: None,
            resolved_ms: None,
            resolved_by: None,
            note: None,
        }
    }

    #[test]
    fn incidents_open_act_and_resolve_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.open_incident(&incident("inc-1", "a")).unwrap();
        store.open_incident(&incident("inc-2", "b")).unwrap();
        let action = |name: &str, outcome: &str, at_ms| IncidentAction {
            action: name.into(),
            outcome: outcome.into(),
            at_ms,
            detail: String::new(),
        };
        assert!(
            !store
                .record_incident_action("inc-1", &action("alert", "failure", 115), false)
                .unwrap()
        );
        assert!(
            store
                .record_incident_action("inc-1", &action("quarantine", "success", 120), true)
                .unwrap(),
            "the first action in force"
        );
        assert!(
            !store
                .record_incident_action("inc-1", &action("revoke-leases", "success", 130), true)
                .unwrap()
        );
        let stored = store.incident("inc-1").unwrap().unwrap();
        assert_eq!(stored.evidence, vec![3, 7]);
        assert_eq!(stored.actions.len(), 3);
        assert_eq!(stored.responded_ms, Some(120), "the first action in force");
        assert!(matches!(
            store.record_incident_action("inc-9", &action("alert", "success", 1), true),
            Err(StoreError::UnknownIncident(_))
        ));

        let only_a = store
            .incidents(&IncidentQuery {
                app: Some("a".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(only_a.len(), 1);
        let resolved = store
            .resolve_incident("inc-1", "false-positive", "local", Some("expected"), 200)
            .unwrap();
        assert_eq!(resolved.status, "resolved");
        assert_eq!(resolved.resolution.as_deref(), Some("false-positive"));
        let again = store
            .resolve_incident("inc-1", "true-positive", "local", None, 300)
            .unwrap_err();
        assert!(
            matches!(&again, StoreError::IncidentAlreadyResolved { resolution, .. } if resolution == "false-positive"),
            "{again}"
        );
        assert!(matches!(
            store.resolve_incident("inc-9", "true-positive", "local", None, 300),
            Err(StoreError::UnknownIncident(_))
        ));
        let open = store
            .incidents(&IncidentQuery {
                status: Some("open".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            open.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["inc-2"]
        );
    }

    #[test]
    fn a_quarantine_is_kept_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let record = QuarantineRecord {
            app: "a".into(),
            function: "f".into(),
            incident_id: "inc-1".into(),
            since_ms: 5,
        };
        assert!(store.quarantine(&record).unwrap());
        let second = QuarantineRecord {
            incident_id: "inc-2".into(),
            ..record.clone()
        };
        assert!(!store.quarantine(&second).unwrap(), "already quarantined");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.quarantines().unwrap(), vec![record.clone()]);
        assert_eq!(store.release("a", "f").unwrap(), Some(record));
        assert_eq!(store.release("a", "f").unwrap(), None);
        assert!(store.quarantines().unwrap().is_empty());
    }
}
