//! [`PolicyStore`] on sled. Checks that must hold across objects — a module in use is not
//! deleted, a bound policy is not deleted, quotas are not exceeded, a binding names existing
//! policies — run in one sled transaction with the write, using reference counters, so
//! concurrent requests cannot slip between the check and the write.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::*;
use crate::store::policy::*;

fn owner_prefix(owner: &Owner) -> Vec<u8> {
    let mut k = owner.to_string().into_bytes();
    k.push(0);
    k
}

fn named_key(owner: &Owner, name: &str) -> Vec<u8> {
    let mut k = owner_prefix(owner);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

fn module_key(owner: &Owner, name: &str, version: u32) -> Vec<u8> {
    let mut k = named_key(owner, name);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn policy_key(owner: &Owner, id: &str) -> Vec<u8> {
    let mut k = owner_prefix(owner);
    k.extend_from_slice(id.as_bytes());
    k
}

fn audit_key(owner: &Owner, seq: u64) -> Vec<u8> {
    let mut k = owner_prefix(owner);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn get_u64(t: &TransactionalTree, key: &[u8]) -> Result<u64, ConflictableTransactionError<Error>> {
    Ok(t.get(key)?
        .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
        .unwrap_or(0))
}

fn add_u64(
    t: &TransactionalTree,
    key: &[u8],
    delta: i64,
) -> Result<u64, ConflictableTransactionError<Error>> {
    let n = (get_u64(t, key)? as i64 + delta).max(0) as u64;
    if n == 0 {
        t.remove(key)?;
    } else {
        t.insert(key, &n.to_be_bytes())?;
    }
    Ok(n)
}

fn abort<T>(e: Error) -> Result<T, ConflictableTransactionError<Error>> {
    Err(ConflictableTransactionError::Abort(e))
}

fn txn_enc<T: Serialize>(v: &T) -> Result<Vec<u8>, ConflictableTransactionError<Error>> {
    enc(v).map_err(ConflictableTransactionError::Abort)
}

fn txn_dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, ConflictableTransactionError<Error>> {
    dec(b).map_err(ConflictableTransactionError::Abort)
}

fn unwrap_txn<T>(r: Result<T, TransactionError<Error>>) -> Result<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    })
}

/// Owner usage: (module versions, bytes).
#[derive(Serialize, Deserialize, Default)]
struct Usage {
    count: usize,
    bytes: usize,
}

impl SledStore {
    fn tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.db.open_tree(name)?)
    }

    /// The file holding the module bytes of `digest` (lowercase SHA-256 hex, checked so that a
    /// digest can never name a path outside the directory).
    fn module_path(&self, digest: &str) -> Result<std::path::PathBuf> {
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::internal(format_args!(
                "not a module digest: {digest:?}"
            )));
        }
        Ok(self.modules_dir.join(digest))
    }
}

/// Module files being written have this prefix; one left by a crash is removed at open.
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` so that it is whole and durable when this returns: a temporary file
/// in the same directory, synced, renamed over `path`, then the directory synced. A file already
/// there with the same length is the same content (the name is its SHA-256) and is kept; the
/// directory is still synced, in case the process that renamed it died before doing so.
fn write_module_file(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return std::fs::File::open(dir)?.sync_all();
    }
    std::fs::create_dir_all(dir)?;
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| std::io::Error::other("CSPRNG failure"))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", hex::encode(suffix)));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::internal(format_args!("{what}: {e}")))
}

#[async_trait]
impl PolicyStore for SledStore {
    /// Module bytes go to a file of their own, not into a sled tree: sled keeps a page it
    /// wrote in memory until that page's cache shard has seen enough other accesses to evict
    /// anything, so every uploaded module stayed resident until the next restart (a heap profile
    /// after 300 uploads of a 132 KB module: 39 MB held by `Tree::insert`; 1,000 uploads took the
    /// server from 41 to 213 MB), and an owner's quota of module bytes was a quota of our RAM.
    async fn put_module_bytes(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.module_path(digest)?;
        let dir = self.modules_dir.clone();
        let bytes = bytes.to_vec();
        blocking("storing module bytes", move || {
            write_module_file(&dir, &path, &bytes)
        })
        .await
    }

    async fn get_module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let path = self.module_path(digest)?;
        let read = blocking("reading module bytes", move || match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        match read {
            Some(b) => Ok(Some(b)),
            // Stores written before module files kept the bytes in this tree.
            None => Ok(self.tree("module_blobs")?.get(digest)?.map(|v| v.to_vec())),
        }
    }

    async fn create_module_version(
        &self,
        owner: &Owner,
        mut record: ModuleRecord,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Option<ModuleRecord>> {
        let modules = self.tree("modules")?;
        let latest = self.tree("module_latest")?;
        let usage = self.tree("module_usage")?;
        let blob_refs = self.tree("module_blob_refs")?;
        let owner_key = owner_prefix(owner);
        let name_key = named_key(owner, &record.name);
        let created = unwrap_txn((&modules, &latest, &usage, &blob_refs).transaction(
            |(modules, latest, usage, blob_refs)| {
                let mut u: Usage = match usage.get(&owner_key)? {
                    Some(v) => txn_dec(&v)?,
                    None => Usage::default(),
                };
                if u.count + 1 > max_count || u.bytes + record.size > max_bytes {
                    return Ok(None);
                }
                let version = match latest.get(&name_key)? {
                    Some(v) => u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 4])) + 1,
                    None => 1,
                };
                latest.insert(name_key.as_slice(), &version.to_be_bytes())?;
                u.count += 1;
                u.bytes += record.size;
                usage.insert(owner_key.as_slice(), txn_enc(&u)?)?;
                add_u64(blob_refs, record.digest.as_bytes(), 1)?;
                let mut r = record.clone();
                r.version = version;
                modules.insert(module_key(owner, &r.name, version), txn_enc(&r)?)?;
                Ok(Some(r))
            },
        ))?;
        if let Some(r) = &created {
            record.version = r.version;
            self.flush().await?;
        }
        Ok(created)
    }

    async fn get_module(
        &self,
        owner: &Owner,
        name: &str,
        version: u32,
    ) -> Result<Option<ModuleRecord>> {
        match self
            .tree("modules")?
            .get(module_key(owner, name, version))?
        {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    async fn list_modules(&self, owner: &Owner) -> Result<Vec<ModuleRecord>> {
        self.tree("modules")?
            .scan_prefix(owner_prefix(owner))
            .map(|kv| dec(&kv?.1))
            .collect()
    }

    async fn delete_module(&self, owner: &Owner, name: &str, version: u32) -> Result<bool> {
        let modules = self.tree("modules")?;
        let refs = self.tree("module_refs")?;
        let usage = self.tree("module_usage")?;
        let blob_refs = self.tree("module_blob_refs")?;
        let blobs = self.tree("module_blobs")?;
        let key = module_key(owner, name, version);
        let owner_key = owner_prefix(owner);
        let deleted = unwrap_txn((&modules, &refs, &usage, &blob_refs, &blobs).transaction(
            |(modules, refs, usage, blob_refs, blobs)| {
                let Some(v) = modules.get(&key)? else {
                    return Ok(None);
                };
                let record: ModuleRecord = txn_dec(&v)?;
                let users = get_u64(refs, &key)?;
                if users > 0 {
                    return abort(Error::Conflict(format!(
                        "module {name}@{version} is used by {users} polic{}; delete or change them first",
                        if users == 1 { "y" } else { "ies" }
                    )));
                }
                modules.remove(key.as_slice())?;
                let mut u: Usage = match usage.get(&owner_key)? {
                    Some(v) => txn_dec(&v)?,
                    None => Usage::default(),
                };
                u.count = u.count.saturating_sub(1);
                u.bytes = u.bytes.saturating_sub(record.size);
                usage.insert(owner_key.as_slice(), txn_enc(&u)?)?;
                let last = add_u64(blob_refs, record.digest.as_bytes(), -1)? == 0;
                if last {
                    blobs.remove(record.digest.as_bytes())?;
                }
                Ok(Some(last.then_some(record.digest)))
            },
        ))?;
        let Some(unreferenced) = deleted else {
            return Ok(false);
        };
        self.flush().await?;
        // The bytes go once the deletion is durable; a crash in between leaves only a file
        // that nothing refers to.
        if let Some(digest) = unreferenced {
            let path = self.module_path(&digest)?;
            blocking(
                "removing module bytes",
                move || match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            )
            .await?;
        }
        Ok(true)
    }

    async fn create_policy(&self, owner: &Owner, policy: &PolicyRecord) -> Result<bool> {
        let policies = self.tree("policies")?;
        let names = self.tree("policy_names")?;
        let modules = self.tree("modules")?;
        let refs = self.tree("module_refs")?;
        let pkey = policy_key(owner, &policy.id);
        let nkey = named_key(owner, &policy.name);
        let module = match &policy.module {
            ModuleRef::Owned { name, version } => Some(module_key(owner, name, *version)),
            ModuleRef::Builtin { .. } => None,
        };
        let created = unwrap_txn((&policies, &names, &modules, &refs).transaction(
            |(policies, names, modules, refs)| {
                if names.get(&nkey)?.is_some() {
                    return Ok(false);
                }
                if let Some(mkey) = &module {
                    if modules.get(mkey)?.is_none() {
                        return abort(Error::Conflict(format!(
                            "module {} does not exist",
                            policy.module
                        )));
                    }
                    add_u64(refs, mkey, 1)?;
                }
                names.insert(nkey.as_slice(), policy.id.as_bytes())?;
                policies.insert(pkey.as_slice(), txn_enc(policy)?)?;
                Ok(true)
            },
        ))?;
        if created {
            self.flush().await?;
        }
        Ok(created)
    }

    async fn get_policy(&self, owner: &Owner, id: &str) -> Result<Option<PolicyRecord>> {
        match self.tree("policies")?.get(policy_key(owner, id))? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    async fn list_policies(&self, owner: &Owner) -> Result<Vec<PolicyRecord>> {
        self.tree("policies")?
            .scan_prefix(owner_prefix(owner))
            .map(|kv| dec(&kv?.1))
            .collect()
    }

    async fn delete_policy(&self, owner: &Owner, id: &str) -> Result<bool> {
        let policies = self.tree("policies")?;
        let names = self.tree("policy_names")?;
        let refs = self.tree("module_refs")?;
        let bound = self.tree("policy_refs")?;
        let pkey = policy_key(owner, id);
        let deleted = unwrap_txn((&policies, &names, &refs, &bound).transaction(
            |(policies, names, refs, bound)| {
                let Some(v) = policies.get(&pkey)? else {
                    return Ok(false);
                };
                let policy: PolicyRecord = txn_dec(&v)?;
                let uses = get_u64(bound, &pkey)?;
                if uses > 0 {
                    return abort(Error::Conflict(format!(
                        "policy {} is bound to {uses} resource{}; unbind it first",
                        policy.name,
                        if uses == 1 { "" } else { "s" }
                    )));
                }
                policies.remove(pkey.as_slice())?;
                names.remove(named_key(owner, &policy.name))?;
                if let ModuleRef::Owned { name, version } = &policy.module {
                    add_u64(refs, &module_key(owner, name, *version), -1)?;
                }
                Ok(true)
            },
        ))?;
        if deleted {
            self.flush().await?;
        }
        Ok(deleted)
    }

    async fn put_resource_policy(
        &self,
        scope: &ResourceScope,
        resource_id: &str,
        policy: &ResourcePolicy,
    ) -> Result<()> {
        let bindings = self.tree("bindings")?;
        let policies = self.tree("policies")?;
        let bound = self.tree("policy_refs")?;
        let key = resource_key(scope, resource_id);
        let owner = &scope.owner;
        unwrap_txn(
            (&bindings, &policies, &bound).transaction(|(bindings, policies, bound)| {
                if let Some(old) = bindings.get(&key)? {
                    let old: ResourcePolicy = txn_dec(&old)?;
                    for b in &old.bindings {
                        add_u64(bound, &policy_key(owner, &b.policy), -1)?;
                    }
                }
                for b in &policy.bindings {
                    let pkey = policy_key(owner, &b.policy);
                    if policies.get(&pkey)?.is_none() {
                        return abort(Error::Conflict(format!(
                            "policy {} does not exist",
                            b.policy
                        )));
                    }
                    add_u64(bound, &pkey, 1)?;
                }
                if policy.bindings.is_empty() && policy.claims.is_none() {
                    bindings.remove(key.as_slice())?;
                } else {
                    bindings.insert(key.as_slice(), txn_enc(policy)?)?;
                }
                Ok(())
            }),
        )?;
        self.flush().await
    }

    async fn get_resource_policy(
        &self,
        scope: &ResourceScope,
        resource_id: &str,
    ) -> Result<Option<ResourcePolicy>> {
        match self
            .tree("bindings")?
            .get(resource_key(scope, resource_id))?
        {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    async fn delete_resource_policy(&self, scope: &ResourceScope, resource_id: &str) -> Result<()> {
        self.put_resource_policy(scope, resource_id, &ResourcePolicy::default())
            .await
    }

    /// No transaction (sled's take a store-wide lock, which made the audit append the largest
    /// store cost of the UMA grant): see [`SledStore::insert_audits`].
    async fn append_audit(&self, owner: &Owner, entry: AuditEntry, keep: usize) -> Result<u64> {
        let mut seqs = self.insert_audits(owner, vec![entry], keep)?;
        self.flush().await?;
        Ok(seqs.pop().unwrap_or_default())
    }

    async fn append_audits(
        &self,
        owner: &Owner,
        entries: Vec<AuditEntry>,
        keep: usize,
    ) -> Result<()> {
        self.insert_audits(owner, entries, keep)?;
        self.flush().await
    }

    async fn query_audit(&self, owner: &Owner, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let audit = self.tree("audit")?;
        // The chunk holding `after + 1` starts at that seq with its low bits cleared.
        let first = q.after.map_or(0, |a| a.saturating_add(1));
        let start = audit_key(owner, first & !(AUDIT_CHUNK as u64 - 1));
        let mut end = owner_prefix(owner);
        end.extend_from_slice(&[0xff; 8]);
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let mut out = Vec::new();
        for kv in audit.range(start..=end) {
            for entry in decode_chunk(&kv?.1)? {
                let keep = entry.seq >= first
                    && q.resource_id
                        .as_ref()
                        .is_none_or(|r| &entry.resource_id == r)
                    && q.client_id.as_ref().is_none_or(|c| &entry.client_id == c)
                    && q.outcome.as_ref().is_none_or(|o| &entry.outcome == o)
                    && q.since.is_none_or(|s| entry.at >= s)
                    && q.until.is_none_or(|u| entry.at <= u);
                if keep {
                    out.push(entry);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Audit entries are stored in chunks: one request's entries (up to this many) under one key,
/// so an RPT over 500 resources writes one value instead of 500 (and its trimming removes one).
/// A chunk's key is `id << 10` for a fresh sled id and its entries' seqs follow it, so seqs
/// stay unique and increasing. Values: the entry count (u32, big-endian), then the entries
/// as a JSON array, or [`COMPRESSED`] and that array compressed. Stores written before
/// chunking hold one JSON object per key (seq = id); all are read.
const AUDIT_CHUNK: usize = 1 << 10;

fn encode_chunk(entries: &[AuditEntry]) -> Result<Vec<u8>> {
    let mut v = (entries.len() as u32).to_be_bytes().to_vec();
    serde_json::to_writer(&mut v, entries)?;
    // A grant's one entry is written once, in place; only a large chunk is rebuilt.
    if v.len() - 4 > COMPRESS_ABOVE {
        let packed = compress(&v[4..]);
        v.truncate(4);
        v.extend_from_slice(&packed);
    }
    Ok(v)
}

fn decode_chunk(value: &[u8]) -> Result<Vec<AuditEntry>> {
    match value.first() {
        Some(b'{') => Ok(vec![dec(value)?]),
        _ => dec(value.get(4..).unwrap_or_default()),
    }
}

/// How many entries a chunk holds, without decoding them.
fn chunk_len(value: &[u8]) -> usize {
    match value {
        [b'{', ..] => 1,
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => 0,
    }
}

impl SledStore {
    /// Insert a request's audit entries in order, each with a fresh `seq` (returned), then trim
    /// the owner's oldest beyond `keep`; the caller flushes. Plain inserts, not a
    /// `sled::Batch`: applying a batch takes sled's store-wide write lock like a transaction
    /// does, which halved the grant's throughput when every grant's audit went through it.
    /// Retention is counted in memory (recounted from the tree after a restart); the count,
    /// the inserts and the trimming happen under one lock so the count stays exact.
    fn insert_audits(
        &self,
        owner: &Owner,
        mut entries: Vec<AuditEntry>,
        keep: usize,
    ) -> Result<Vec<u64>> {
        let audit = self.tree("audit")?;
        let okey = owner_prefix(owner);
        let mut encoded = Vec::new();
        for chunk in entries.chunks_mut(AUDIT_CHUNK) {
            let base = self.db.generate_id()? << 10;
            for (i, entry) in chunk.iter_mut().enumerate() {
                entry.seq = base + i as u64;
            }
            encoded.push((audit_key(owner, base), encode_chunk(chunk)?));
        }
        {
            let mut counts = self.audit_counts.lock().unwrap_or_else(|p| p.into_inner());
            let count = match counts.get_mut(&okey) {
                Some(n) => n,
                None => {
                    let mut n = 0;
                    for kv in audit.scan_prefix(&okey) {
                        n += chunk_len(&kv?.1);
                    }
                    counts.entry(okey.clone()).or_insert(n)
                }
            };
            for (key, value) in encoded {
                audit.insert(key, value)?;
            }
            *count += entries.len();
            // Bounded retention: the owner's oldest entries go first, whole chunks while they
            // fit in the excess, then the front of the oldest remaining chunk.
            while *count > keep {
                let Some((key, value)) = audit.scan_prefix(&okey).next().transpose()? else {
                    break;
                };
                let excess = *count - keep;
                let n = chunk_len(&value);
                if n <= excess {
                    audit.remove(&key)?;
                    *count -= n;
                } else {
                    let rest = decode_chunk(&value)?.split_off(excess);
                    audit.insert(&key, encode_chunk(&rest)?)?;
                    *count -= excess;
                }
            }
        }
        Ok(entries.iter().map(|e| e.seq).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::policy::{AuditQuery, PolicyStore};

    use crate::store::conformance::audit_entry as entry;

    async fn ids(store: &SledStore, owner: &Owner) -> Vec<String> {
        let all = AuditQuery {
            limit: Some(500),
            ..Default::default()
        };
        let entries = store.query_audit(owner, &all).await.unwrap();
        assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
        entries.into_iter().map(|e| e.resource_id).collect()
    }

    fn module(name: &str, bytes: &[u8]) -> ModuleRecord {
        ModuleRecord {
            name: name.into(),
            version: 0,
            digest: crate::runtime::digest(bytes),
            world: crate::runtime::World::Policy,
            size: bytes.len(),
            imports: vec![],
            exports: vec![],
            created_at: 0,
            requested_limits: Default::default(),
        }
    }

    /// Module bytes are files named by their digest beside sled's, not sled values (which stayed
    /// in memory): durable across a reopen, shared by versions with the same bytes, removed with
    /// the last version that refers to them; a store from before keeps its bytes in sled.
    #[tokio::test]
    async fn module_bytes_are_files_shared_by_digest_and_removed_with_their_last_version() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Owner::User("alice".into());
        let bytes = b"\0asm component bytes".to_vec();
        let m = module("m", &bytes);
        let file = dir.path().join("modules").join(&m.digest);
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.put_module_bytes(&m.digest, &bytes).await.unwrap();
            assert!(store.tree("module_blobs").unwrap().is_empty());
            for _ in 0..2 {
                store.put_module_bytes(&m.digest, &bytes).await.unwrap();
                store
                    .create_module_version(&alice, m.clone(), 10, 1 << 20)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            [std::ffi::OsString::from(&m.digest)],
            "no temporary files left"
        );

        // A temporary file a crash left behind is removed when the store opens.
        let stale = dir.path().join("modules").join(format!("{TMP_PREFIX}0123"));
        std::fs::write(&stale, b"half").unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!stale.exists());
        assert_eq!(
            store.get_module_bytes(&m.digest).await.unwrap().unwrap(),
            bytes
        );
        assert!(store.delete_module(&alice, "m", 1).await.unwrap());
        assert!(file.exists(), "version 2 still refers to the bytes");
        assert!(store.delete_module(&alice, "m", 2).await.unwrap());
        assert!(!file.exists());
        assert!(store.get_module_bytes(&m.digest).await.unwrap().is_none());

        // Written before module files: the bytes are in the `module_blobs` tree.
        let old = b"\0asm older bytes".to_vec();
        let o = module("old", &old);
        store
            .tree("module_blobs")
            .unwrap()
            .insert(&o.digest, old.as_slice())
            .unwrap();
        store
            .create_module_version(&alice, o.clone(), 10, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.get_module_bytes(&o.digest).await.unwrap().unwrap(),
            old
        );
        assert!(store.delete_module(&alice, "old", 1).await.unwrap());
        assert!(store.get_module_bytes(&o.digest).await.unwrap().is_none());

        // A digest is never a path.
        for bad in [
            "../../etc/passwd",
            "",
            &"A".repeat(64),
            &format!("{}/", &m.digest[..63]),
        ] {
            assert!(store.get_module_bytes(bad).await.is_err(), "{bad}");
            assert!(store.put_module_bytes(bad, b"x").await.is_err(), "{bad}");
        }
    }

    /// A 500-permission request's chunk is compressed well under sled's ~128 KiB blob
    /// threshold, a grant's single entry stays plain JSON, both list, page and trim in order,
    /// and a damaged compressed chunk is an error, not a panic or a huge allocation.
    #[tokio::test]
    async fn large_audit_chunks_are_compressed_below_sleds_blob_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let alice = Owner::User("alice".into());
        let names: Vec<String> = (0..500).map(|i| format!("r{i:03}")).collect();
        let batch: Vec<_> = names.iter().map(|n| entry(n)).collect();
        store.append_audits(&alice, batch, 10_000).await.unwrap();
        store
            .append_audit(&alice, entry("one"), 10_000)
            .await
            .unwrap();

        let values: Vec<_> = store
            .tree("audit")
            .unwrap()
            .iter()
            .map(|kv| kv.unwrap().1)
            .collect();
        assert_eq!(values.len(), 2);
        let (big, one) = (&values[0], &values[1]);
        assert_eq!(big[4], COMPRESSED);
        let json = serde_json::to_vec(&decode_chunk(big).unwrap()).unwrap();
        assert!(json.len() > 32 << 10, "{}", json.len());
        assert!(
            big.len() * 4 < json.len(),
            "{} of {}",
            big.len(),
            json.len()
        );
        assert_eq!(chunk_len(big), 500);
        assert_eq!(one[4], b'[');

        let mut want = names.clone();
        want.push("one".into());
        let all = store
            .query_audit(
                &alice,
                &AuditQuery {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let got: Vec<_> = all.iter().map(|e| e.resource_id.clone()).collect();
        assert_eq!(got, want[..500]);
        let next = store
            .query_audit(
                &alice,
                &AuditQuery {
                    after: Some(all[137].seq),
                    limit: Some(3),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let next: Vec<_> = next.into_iter().map(|e| e.resource_id).collect();
        assert_eq!(next, want[138..141]);
        // Trimming cuts into the compressed chunk and re-encodes the rest.
        store
            .append_audit(&alice, entry("last"), 100)
            .await
            .unwrap();
        let mut kept = want[402..].to_vec();
        kept.push("last".into());
        assert_eq!(ids(&store, &alice).await, kept);

        let mut damaged = big.to_vec();
        damaged.truncate(big.len() / 2);
        assert!(decode_chunk(&damaged).is_err());
        let mut bomb = 1u32.to_be_bytes().to_vec();
        bomb.push(COMPRESSED);
        bomb.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_chunk(&bomb).is_err());
    }

    /// A store written before audit chunks (one JSON object per key) keeps its entries: they
    /// are listed, paged, counted for retention after a restart, and trimmed first.
    #[tokio::test]
    async fn audit_entries_from_before_chunking_are_read_counted_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Owner::User("alice".into());
        {
            let store = SledStore::open(dir.path()).unwrap();
            let audit = store.tree("audit").unwrap();
            for i in 0..3 {
                let mut e = entry(&format!("old{i}"));
                e.seq = store.db.generate_id().unwrap();
                audit
                    .insert(audit_key(&alice, e.seq), enc(&e).unwrap())
                    .unwrap();
            }
            store.flush().await.unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(ids(&store, &alice).await, ["old0", "old1", "old2"]);
        let batch = vec![entry("new0"), entry("new1")];
        store.append_audits(&alice, batch, 4).await.unwrap();
        assert_eq!(ids(&store, &alice).await, ["old1", "old2", "new0", "new1"]);
        let after_old2 = AuditQuery {
            after: Some(
                store
                    .query_audit(&alice, &AuditQuery::default())
                    .await
                    .unwrap()[1]
                    .seq,
            ),
            ..Default::default()
        };
        let next: Vec<_> = store
            .query_audit(&alice, &after_old2)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.resource_id)
            .collect();
        assert_eq!(next, ["new0", "new1"]);
    }

    /// After a restart the retention count comes from the chunks' headers: a batch written
    /// before it is counted entry by entry, and trimming cuts into it.
    #[tokio::test]
    async fn audit_chunks_are_counted_by_entry_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Owner::User("alice".into());
        {
            let store = SledStore::open(dir.path()).unwrap();
            let batch = (0..5).map(|i| entry(&format!("a{i}"))).collect();
            store.append_audits(&alice, batch, 10).await.unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        store.append_audit(&alice, entry("b"), 5).await.unwrap();
        assert_eq!(ids(&store, &alice).await, ["a1", "a2", "a3", "a4", "b"]);
    }
}
