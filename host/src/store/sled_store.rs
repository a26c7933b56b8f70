//! [`Store`] on sled: one tree per kind of object, JSON values (LZ4-compressed above 4 KiB),
//! and a flush before every acknowledged write returns.

use std::path::Path;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::error::Error;

mod commit;
mod policy;
mod uma;

/// Objects that carry their own expiry (unix seconds).
trait Expiring {
    fn exp(&self) -> u64;
}
impl Expiring for Ticket {
    fn exp(&self) -> u64 {
        self.exp
    }
}
impl Expiring for AuthCode {
    fn exp(&self) -> u64 {
        self.exp
    }
}
impl Expiring for PendingLogin {
    fn exp(&self) -> u64 {
        self.exp
    }
}
/// A consumed single-use credential, remembered for replay detection.
#[derive(Serialize, serde::Deserialize)]
struct Spent {
    family: String,
    exp: u64,
}
impl Expiring for Spent {
    fn exp(&self) -> u64 {
        self.exp
    }
}
impl Expiring for RefreshGrant {
    fn exp(&self) -> u64 {
        self.exp
    }
}

pub struct SledStore {
    db: sled::Db,
    /// Module bytes, one file per content digest (see `policy.rs`).
    modules_dir: std::path::PathBuf,
    commit: commit::GroupCommit,
    /// Audit entries per owner (key: owner prefix), counted on first use after start.
    audit_counts: std::sync::Mutex<std::collections::HashMap<Vec<u8>, usize>>,
    clients: sled::Tree,
    users: sled::Tree,
    resources: sled::Tree,
    tickets: sled::Tree,
    /// Sealed tickets already presented: id -> exp (u64, big-endian).
    spent_tickets: sled::Tree,
    codes: sled::Tree,
    logins: sled::Tree,
    refresh: sled::Tree,
    revoked: sled::Tree,
    spent: sled::Tree,
    revoked_families: sled::Tree,
    keys: sled::Tree,
    secrets: sled::Tree,
}

/// A value is its JSON, or [`COMPRESSED`] followed by that JSON LZ4-compressed when it is larger
/// than [`COMPRESS_ABOVE`]. Values written before compression are plain JSON and still read.
fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(v)?;
    Ok(if json.len() > COMPRESS_ABOVE {
        compress(&json)
    } else {
        json
    })
}
fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    match b {
        [COMPRESSED, packed @ ..] => Ok(serde_json::from_slice(&decompress(packed)?)?),
        json => Ok(serde_json::from_slice(json)?),
    }
}

/// Marks a compressed value: LZ4 block format with the size prepended. No JSON text starts
/// with this byte, so the two cannot be confused.
const COMPRESSED: u8 = 1;

/// JSON above this size is compressed. sled keeps a leaf of up to 16 values whole in memory,
/// rewrites it whole when it consolidates, and writes any value or leaf image over ~128 KiB
/// (a quarter of its 512 KiB segment) to a blob file of its own, created and synced per
/// write. Large values are few but expensive: an RPT's record over 500 resources is ~34 KB of
/// JSON, a 500-entry audit chunk ~200 KB. Their field names repeat, so LZ4 shrinks them
/// several times over at a few tens of microseconds; small values gain nothing.
const COMPRESS_ABOVE: usize = 4 << 10;

/// The most a compressed value may claim to expand to: a damaged value is an error, not a
/// huge allocation.
const MAX_DECOMPRESSED: usize = 64 << 20;

fn compress(json: &[u8]) -> Vec<u8> {
    let packed = lz4_flex::compress_prepend_size(json);
    let mut v = Vec::with_capacity(1 + packed.len());
    v.push(COMPRESSED);
    v.extend_from_slice(&packed);
    v
}

/// The JSON of a value [`compress`] wrote, without its [`COMPRESSED`] mark.
fn decompress(packed: &[u8]) -> Result<Vec<u8>> {
    let damaged = |e: lz4_flex::block::DecompressError| {
        Error::internal(format!("a compressed value is damaged: {e}"))
    };
    let (size, data) = lz4_flex::block::uncompressed_size(packed).map_err(damaged)?;
    if size > MAX_DECOMPRESSED {
        return Err(Error::internal(
            "a compressed value claims an impossible size",
        ));
    }
    lz4_flex::decompress(data, size).map_err(damaged)
}

/// `owner \0 resource_server \0`: owners and client ids never contain NUL (validated on
/// creation), so the encoding is injective and a scan of this prefix stays inside the scope.
fn scope_prefix(scope: &ResourceScope) -> Vec<u8> {
    let mut k = scope.owner.to_string().into_bytes();
    k.push(0);
    k.extend_from_slice(scope.resource_server.as_bytes());
    k.push(0);
    k
}
fn resource_key(scope: &ResourceScope, id: &str) -> Vec<u8> {
    let mut k = scope_prefix(scope);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Hash under which bearer secrets (refresh tokens) are stored, so a copy of the database does
/// not hand out usable tokens.
fn secret_key(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

impl SledStore {
    /// Open with the default page cache (see [`crate::config::Config::store_cache_bytes`]).
    pub fn open(dir: &Path) -> Result<SledStore> {
        Self::open_with_cache(dir, crate::config::Config::default().store_cache_bytes)
    }

    /// Open with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format_args!("creating {}: {e}", dir.display())))?;
        // Every acknowledged write is flushed explicitly, so no background flusher thread is needed
        // (which also lets the same process reopen the directory right after closing it).
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()?;
        let t = |n: &str| db.open_tree(n);
        // A module file a crash left half-written was never referred to: its record commits
        // only after the rename.
        if let Ok(entries) = std::fs::read_dir(dir.join("modules")) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(policy::TMP_PREFIX)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // Audit counts were kept in this tree before they moved to memory.
        db.drop_tree("audit_counts")?;
        Ok(SledStore {
            clients: t("clients")?,
            users: t("users")?,
            resources: t("resources")?,
            tickets: t("tickets")?,
            spent_tickets: t("spent_tickets")?,
            codes: t("codes")?,
            logins: t("logins")?,
            refresh: t("refresh")?,
            revoked: t("revoked")?,
            spent: t("spent")?,
            revoked_families: t("revoked_families")?,
            keys: t("keys")?,
            secrets: t("secrets")?,
            audit_counts: Default::default(),
            modules_dir: dir.join("modules"),
            commit: commit::GroupCommit::start(db.clone())
                .map_err(|e| Error::internal(format_args!("starting the store's flusher: {e}")))?,
            db,
        })
    }

    /// Make every write so far durable before the caller acknowledges it. Concurrent callers
    /// share one flush (group commit, see [`commit`]).
    async fn flush(&self) -> Result<()> {
        if super::defer_flush() {
            return Ok(());
        }
        self.commit.flush().await
    }

    async fn insert<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], v: &T) -> Result<()> {
        tree.insert(key, enc(v)?)?;
        self.flush().await
    }

    async fn create<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], v: &T) -> Result<bool> {
        let created = tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(enc(v)?))?
            .is_ok();
        if created {
            self.flush().await?;
        }
        Ok(created)
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>> {
        tree.get(key)?.map(|b| dec(&b)).transpose()
    }

    async fn remove(&self, tree: &sled::Tree, key: &[u8]) -> Result<bool> {
        let removed = tree.remove(key)?.is_some();
        if removed {
            self.flush().await?;
        }
        Ok(removed)
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>> {
        tree.iter().values().map(|v| dec(&v?)).collect()
    }

    /// Atomic single-use consumption: `remove` returns the value to exactly one caller.
    async fn take<T: DeserializeOwned + Expiring>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>> {
        let Some(bytes) = tree.remove(key)? else {
            return Ok(None);
        };
        self.flush().await?;
        let v: T = dec(&bytes)?;
        Ok((v.exp() > unix_now()).then_some(v))
    }

    fn prune_tree<T: DeserializeOwned + Expiring>(tree: &sled::Tree, now: u64) -> Result<usize> {
        let mut n = 0;
        for kv in tree.iter() {
            let (k, v) = kv?;
            let expired = dec::<T>(&v).map(|t| t.exp() <= now).unwrap_or(true);
            if expired {
                tree.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl Store for SledStore {
    async fn sync(&self) -> Result<()> {
        self.commit.flush().await
    }

    async fn create_client(&self, client: &Client) -> Result<bool> {
        self.create(&self.clients, client.client_id.as_bytes(), client)
            .await
    }
    async fn put_client(&self, client: &Client) -> Result<()> {
        self.insert(&self.clients, client.client_id.as_bytes(), client)
            .await
    }
    async fn get_client(&self, client_id: &str) -> Result<Option<Client>> {
        Self::get(&self.clients, client_id.as_bytes())
    }
    async fn list_clients(&self) -> Result<Vec<Client>> {
        Self::all(&self.clients)
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool> {
        self.remove(&self.clients, client_id.as_bytes()).await
    }

    async fn create_user(&self, user: &User) -> Result<bool> {
        self.create(&self.users, user.username.as_bytes(), user)
            .await
    }
    async fn put_user(&self, user: &User) -> Result<()> {
        self.insert(&self.users, user.username.as_bytes(), user)
            .await
    }
    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        Self::get(&self.users, username.as_bytes())
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        Self::all(&self.users)
    }
    async fn delete_user(&self, username: &str) -> Result<bool> {
        self.remove(&self.users, username.as_bytes()).await
    }

    async fn create_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
        r: &ResourceDescription,
    ) -> Result<()> {
        if self
            .create(&self.resources, &resource_key(scope, id), r)
            .await?
        {
            Ok(())
        } else {
            Err(Error::internal("resource id collision"))
        }
    }
    async fn replace_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
        r: &ResourceDescription,
    ) -> Result<bool> {
        let new = enc(r)?;
        // Only replace what exists: a PUT never creates a resource under a caller-chosen id.
        let previous = self
            .resources
            .fetch_and_update(resource_key(scope, id), |old| old.map(|_| new.clone()))?;
        if previous.is_some() {
            self.flush().await?;
        }
        Ok(previous.is_some())
    }
    async fn get_resource(
        &self,
        scope: &ResourceScope,
        id: &str,
    ) -> Result<Option<ResourceDescription>> {
        Self::get(&self.resources, &resource_key(scope, id))
    }
    async fn delete_resource(&self, scope: &ResourceScope, id: &str) -> Result<bool> {
        self.remove(&self.resources, &resource_key(scope, id)).await
    }
    async fn list_resources(
        &self,
        scope: &ResourceScope,
    ) -> Result<Vec<(String, ResourceDescription)>> {
        let prefix = scope_prefix(scope);
        self.resources
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                Ok((id, dec(&v)?))
            })
            .collect()
    }

    async fn put_ticket(&self, ticket: &str, t: &Ticket) -> Result<()> {
        self.insert(&self.tickets, &secret_key(ticket), t).await
    }
    async fn take_ticket(&self, ticket: &str) -> Result<Option<Ticket>> {
        self.take(&self.tickets, &secret_key(ticket)).await
    }

    async fn spend_ticket(&self, id: &str, exp: u64) -> Result<bool> {
        let fresh = self
            .spent_tickets
            .compare_and_swap(id, None as Option<&[u8]>, Some(&exp.to_be_bytes()[..]))?
            .is_ok();
        if fresh {
            self.flush().await?;
        }
        Ok(fresh)
    }
    async fn put_code(&self, code: &str, c: &AuthCode) -> Result<()> {
        self.insert(&self.codes, &secret_key(code), c).await
    }
    async fn take_code(&self, code: &str) -> Result<Option<AuthCode>> {
        self.take(&self.codes, &secret_key(code)).await
    }
    async fn put_login(&self, id: &str, l: &PendingLogin) -> Result<()> {
        self.insert(&self.logins, &secret_key(id), l).await
    }
    async fn take_login(&self, id: &str) -> Result<Option<PendingLogin>> {
        self.take(&self.logins, &secret_key(id)).await
    }
    async fn put_refresh(&self, token: &str, r: &RefreshGrant) -> Result<()> {
        self.insert(&self.refresh, &secret_key(token), r).await
    }
    async fn get_refresh(&self, token: &str) -> Result<Option<RefreshGrant>> {
        let r: Option<RefreshGrant> = Self::get(&self.refresh, &secret_key(token))?;
        Ok(r.filter(|r| r.exp > unix_now()))
    }
    async fn take_refresh(&self, token: &str) -> Result<Option<RefreshGrant>> {
        self.take(&self.refresh, &secret_key(token)).await
    }

    async fn revoke_jti(&self, jti: &str, exp: u64) -> Result<()> {
        self.revoked.insert(jti.as_bytes(), &exp.to_be_bytes())?;
        self.flush().await
    }
    async fn is_revoked(&self, jti: &str) -> Result<bool> {
        Ok(self.revoked.contains_key(jti.as_bytes())?)
    }

    async fn put_spent(&self, token: &str, family: &str, exp: u64) -> Result<()> {
        let record = Spent {
            family: family.to_owned(),
            exp,
        };
        self.insert(&self.spent, &secret_key(token), &record).await
    }
    async fn spent_family(&self, token: &str) -> Result<Option<String>> {
        let s: Option<Spent> = Self::get(&self.spent, &secret_key(token))?;
        Ok(s.filter(|s| s.exp > unix_now()).map(|s| s.family))
    }
    async fn revoke_family(&self, family: &str, exp: u64) -> Result<()> {
        self.revoked_families
            .insert(family.as_bytes(), &exp.to_be_bytes())?;
        self.flush().await
    }
    async fn is_family_revoked(&self, family: &str) -> Result<bool> {
        Ok(self.revoked_families.contains_key(family.as_bytes())?)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>> {
        Self::all(&self.keys)
    }
    async fn put_key(&self, key: &KeyRecord) -> Result<()> {
        self.insert(&self.keys, key.kid.as_bytes(), key).await
    }
    async fn delete_key(&self, kid: &str) -> Result<()> {
        self.remove(&self.keys, kid.as_bytes()).await.map(drop)
    }

    async fn server_secret(&self, name: &str) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        aws_lc_rs::rand::fill(&mut fresh).map_err(|_| Error::internal("CSPRNG failure"))?;
        // Whoever stores first wins; everyone reads the stored value.
        let _ = self
            .secrets
            .compare_and_swap(name, None as Option<&[u8]>, Some(&fresh[..]))?;
        self.flush().await?;
        let stored = self
            .secrets
            .get(name)?
            .ok_or_else(|| Error::internal("server secret vanished"))?;
        stored
            .as_ref()
            .try_into()
            .map_err(|_| Error::internal("server secret has the wrong length"))
    }

    async fn prune_expired(&self, now: u64) -> Result<usize> {
        let mut n = Self::prune_tree::<Ticket>(&self.tickets, now)?;
        n += Self::prune_tree::<AuthCode>(&self.codes, now)?;
        n += Self::prune_tree::<PendingLogin>(&self.logins, now)?;
        n += Self::prune_tree::<RefreshGrant>(&self.refresh, now)?;
        n += Self::prune_tree::<Spent>(&self.spent, now)?;
        for tree in [&self.revoked, &self.revoked_families, &self.spent_tickets] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                let exp = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                if exp <= now {
                    tree.remove(k)?;
                    n += 1;
                }
            }
        }
        if n > 0 {
            self.flush().await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance;

    fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn s19_ticket_is_single_use_under_concurrent_redemption() {
        let (_d, s) = open();
        conformance::tickets_are_single_use_under_concurrency(s).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn s19_sealed_ticket_is_spent_once_under_concurrency() {
        let (_d, s) = open();
        conformance::sealed_tickets_are_spent_once(s).await;
    }

    #[tokio::test]
    async fn t_4_expired_objects_are_never_returned() {
        let (_d, s) = open();
        conformance::expired_objects_are_never_returned(s.as_ref()).await;
    }

    #[tokio::test]
    async fn s10_resources_are_only_reachable_within_their_scope() {
        let (_d, s) = open();
        conformance::resources_are_scoped(s.as_ref()).await;
    }

    #[tokio::test]
    async fn clients_users_codes_refresh_tokens_and_keys() {
        let (_d, s) = open();
        conformance::clients_users_and_single_use_grants(s.as_ref()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn audit_retention_is_exact_per_owner() {
        let (_d, s) = open();
        conformance::audit_retention_is_exact_per_owner(s).await;
    }

    #[tokio::test]
    async fn audit_batches_keep_order_and_retention() {
        let (_d, s) = open();
        conformance::audit_batches_keep_order_and_retention(s).await;
    }

    #[tokio::test]
    async fn audit_retention_after_reopening_counts_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Owner::User("alice".into());
        let entry = conformance::audit_entry;
        {
            let store = SledStore::open(dir.path()).unwrap();
            for i in 0..4 {
                store
                    .append_audit(&alice, entry(&format!("a{i}")), 4)
                    .await
                    .unwrap();
            }
        }
        let store = SledStore::open(dir.path()).unwrap();
        store.append_audit(&alice, entry("b"), 4).await.unwrap();
        let q = crate::store::policy::AuditQuery::default();
        let ids: Vec<String> = store
            .query_audit(&alice, &q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.resource_id)
            .collect();
        assert_eq!(ids, ["a1", "a2", "a3", "b"]);
    }

    /// Writes inside `one_sync` are not flushed one by one but are durable when it returns.
    #[tokio::test]
    async fn writes_in_one_sync_are_durable_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
            crate::store::one_sync(&*store, async {
                for i in 0..3 {
                    store
                        .put_ticket(&format!("t{i}"), &conformance::ticket(unix_now() + 60))
                        .await?;
                }
                Ok(())
            })
            .await
            .unwrap();
            // A crash right after the answer: nothing of sled's own shutdown flush runs.
            std::mem::forget(store);
        }
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
            }
        }
        let store = SledStore::open(copy.path()).unwrap();
        for i in 0..3 {
            assert!(store.take_ticket(&format!("t{i}")).await.unwrap().is_some());
        }
    }

    /// A large value (an RPT's record over 500 resources, ~34 KB of JSON) is stored LZ4-compressed
    /// and reads back the same through listing and taking; a small one stays plain JSON; a value
    /// written before compression (plain JSON of any size) is still read; a damaged compressed
    /// value, or one claiming a huge size, is an error instead of a panic or an allocation.
    #[tokio::test]
    async fn large_values_are_stored_compressed_and_read_back() {
        use crate::store::uma::RptRecord;
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let alice = Owner::User("alice".into());
        let record = |jti: &str, n: usize| RptRecord {
            jti: jti.into(),
            resource_server: "rs".into(),
            client_id: "app".into(),
            requesting_party: None,
            permissions: (0..n)
                .map(|i| Permission {
                    resource_id: format!("res-{i:016x}"),
                    resource_scopes: vec!["read".into(), "write".into()],
                })
                .collect(),
            iat: unix_now(),
            exp: unix_now() + 60,
        };
        let rpts = store.db.open_tree("rpts").unwrap();
        let big = record("big", 500);
        let json = serde_json::to_vec(&big).unwrap();
        store.record_rpt(&alice, &big).await.unwrap();
        let stored = rpts.get(uma::owned_key(&alice, "big")).unwrap().unwrap();
        assert_eq!(stored[0], COMPRESSED);
        assert!(
            json.len() > 30_000 && stored.len() * 4 < json.len(),
            "{} -> {}",
            json.len(),
            stored.len()
        );

        let small = record("small", 1);
        store.record_rpt(&alice, &small).await.unwrap();
        let stored = rpts.get(uma::owned_key(&alice, "small")).unwrap().unwrap();
        assert_eq!(&*stored, serde_json::to_vec(&small).unwrap().as_slice());

        // As a store from before compression holds it.
        rpts.insert(
            uma::owned_key(&alice, "old"),
            serde_json::to_vec(&record("old", 500)).unwrap(),
        )
        .unwrap();
        let mut listed: Vec<(String, usize)> = store
            .list_rpts(&alice)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.jti, r.permissions.len()))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                ("big".into(), 500),
                ("old".into(), 500),
                ("small".into(), 1)
            ]
        );
        let taken = store.take_rpt(&alice, "big").await.unwrap().unwrap();
        assert_eq!(serde_json::to_vec(&taken).unwrap(), json);

        let mut damaged = compress(&json);
        damaged.truncate(damaged.len() / 2);
        assert!(dec::<RptRecord>(&damaged).is_err());
        let mut bomb = vec![COMPRESSED];
        bomb.extend_from_slice(&u32::MAX.to_le_bytes());
        bomb.extend_from_slice(b"xyz");
        assert!(dec::<RptRecord>(&bomb).is_err());
    }

    #[tokio::test]
    async fn acknowledged_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let secret = {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .put_ticket("t", &conformance::ticket(unix_now() + 60))
                .await
                .unwrap();
            let k1 = store.server_secret("k").await.unwrap();
            assert_eq!(k1, store.server_secret("k").await.unwrap());
            k1
        };
        let store = SledStore::open(dir.path()).unwrap();
        assert!(store.take_ticket("t").await.unwrap().is_some());
        assert_eq!(store.server_secret("k").await.unwrap(), secret);
    }
}
