//! Further accounts of a built-in helpdesk (`gorgias:eu-store` beside `gorgias`): the
//! helpdesk's own code reads them, and what it produces is then put under the account's name,
//! so that two stores' ticket 5 are two tickets and their happenings two events.

use async_trait::async_trait;

use crate::model::{Record, Source};
use crate::sync::{FetchError, Page, PageRequest, SourceReader};

/// Moves the events of `records`, which the helpdesk's code keys under the helpdesk
/// (`gorgias:ticket:5:…`), under `source`, its account (`gorgias:eu-store:ticket:5:…`). Nothing
/// changes for the helpdesk itself.
pub fn rekey(source: &Source, records: &mut [Record]) {
    if source.account_name().is_none() {
        return;
    }
    let from = format!("{}:", source.vendor());
    let to = format!("{source}:");
    for event in records.iter_mut().flat_map(|r| r.events.iter_mut()) {
        if let Some(rest) = event.id.strip_prefix(&from) {
            event.id = format!("{to}{rest}");
        }
    }
}

/// The helpdesk's reader of an account, reporting the account as its source and its records'
/// events under the account's name.
pub struct AccountReader {
    pub inner: Box<dyn SourceReader>,
    pub source: Source,
}

#[async_trait]
impl SourceReader for AccountReader {
    fn source(&self) -> Source {
        self.source.clone()
    }

    fn streams(&self) -> &'static [&'static str] {
        self.inner.streams()
    }

    async fn fetch_page(&self, request: &PageRequest) -> Result<Page, FetchError> {
        let mut page = self.inner.fetch_page(request).await.map_err(|e| match e {
            // The helpdesk's reader names the helpdesk's variables; this account's are its own.
            FetchError::Rejected(why) => FetchError::Rejected(format!(
                "{}: {}",
                self.source,
                why.replace(
                    &self.source.vendor().variable_prefix(),
                    &self.source.variable_prefix()
                )
            )),
            other => other,
        })?;
        rekey(&self.source, &mut page.records);
        Ok(page)
    }

    fn account_limiter(&self) -> Option<&std::sync::Arc<crate::sync::Limiter>> {
        self.inner.account_limiter()
    }

    fn lane_limiters(&self) -> Vec<(&'static str, &std::sync::Arc<crate::sync::Limiter>)> {
        self.inner.lane_limiters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, SupportEvent};
    use chrono::{TimeZone, Utc};

    #[test]
    fn an_accounts_events_are_keyed_under_its_name() {
        let at = Utc
            .timestamp_opt(1_736_294_400, 0)
            .single()
            .expect("a time");
        let event = |source: &Source| SupportEvent {
            id: SupportEvent::stable_id(source, "ticket:5", EventKind::TicketClosed, at),
            kind: EventKind::TicketClosed,
            occurred_at: at,
            ticket_id: Some("5".into()),
            channel: None,
            properties: Default::default(),
        };
        let account = Source::account(&Source::Gorgias, "eu-store").expect("an account");
        let mut records = vec![Record {
            events: vec![event(&Source::Gorgias)],
            ..Default::default()
        }];
        rekey(&account, &mut records);
        assert_eq!(records[0].events[0].id, event(&account).id);
        assert!(
            records[0].events[0]
                .id
                .starts_with("gorgias:eu-store:ticket:5:")
        );
        // The helpdesk's own events stay as they are.
        let mut own = vec![Record {
            events: vec![event(&Source::Gorgias)],
            ..Default::default()
        }];
        rekey(&Source::Gorgias, &mut own);
        assert_eq!(own[0].events[0].id, event(&Source::Gorgias).id);
    }
}
