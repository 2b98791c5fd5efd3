import type { CatalogDocument } from '../../lib/core/catalog-document';
import { catalogEtag } from '../../lib/core/catalog-document';
import type { CatalogMember } from '../../lib/core/registry-state';
import type { MemberQuery, MemberWriteOutcome, RegistryStateStore, StoredCatalog } from '../../lib/aws/registry-state-store';

/**
 * The registry state table in memory, with RegistryStateStore's conditions: the document is
 * written only over the revision it follows, a member only over an older read. `beforeWrite`
 * lets a test have another writer publish first (a conflict).
 */
export class FakeRegistryState {
  public doc?: CatalogDocument;
  public readonly members = new Map<string, Map<string, { member: CatalogMember; readAt: number }>>();
  public readonly calls = { readCatalog: 0, writeCatalog: 0, queryMembers: 0, putMember: 0, deleteMember: 0 };
  public beforeWrite?: () => void;
  public failQuery?: Error;

  public asStore(): RegistryStateStore {
    return this as unknown as RegistryStateStore;
  }

  public async readCatalog(): Promise<StoredCatalog | undefined> {
    this.calls.readCatalog++;
    return this.doc && { document: structuredClone(this.doc), etag: catalogEtag(this.doc) };
  }

  public async writeCatalog(doc: CatalogDocument, previousRevision: number | undefined): Promise<'written' | 'conflict'> {
    this.calls.writeCatalog++;
    const hook = this.beforeWrite;
    this.beforeWrite = undefined;
    hook?.();
    if ((this.doc?.revision ?? undefined) !== previousRevision) return 'conflict';
    this.doc = structuredClone(doc);
    return 'written';
  }

  public async queryMembers(capability: string): Promise<MemberQuery> {
    this.calls.queryMembers++;
    if (this.failQuery) throw this.failQuery;
    const group = [...(this.members.get(capability)?.values() ?? [])];
    return { members: group.map((g) => g.member), readAt: new Map(group.map((g) => [g.member.target, g.readAt])), consumedReadUnits: group.length, scannedCount: group.length };
  }

  public async putMember(member: CatalogMember, readAt: number): Promise<MemberWriteOutcome> {
    this.calls.putMember++;
    const group = this.members.get(member.capability) ?? new Map();
    this.members.set(member.capability, group);
    const had = group.get(member.target);
    if (had && had.readAt > readAt) return 'stale';
    group.set(member.target, { member, readAt });
    return 'written';
  }

  public async deleteMember(capability: string, target: string, readAt: number): Promise<MemberWriteOutcome> {
    this.calls.deleteMember++;
    const had = this.members.get(capability)?.get(target);
    if (had && had.readAt > readAt) return 'stale';
    this.members.get(capability)?.delete(target);
    return 'written';
  }
}
