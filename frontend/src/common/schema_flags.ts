// What a document says about itself, read in one place for every view: which MACs convention its
// figures follow (a migrated schema 1 document's MACs are not comparable with schema 2 ones).
import type { Architecture } from '../types';

/** The MACs convention of the document's figures: 'current' (schema 2: per example, one rule for
 *  every framework), 'old' (a migrated schema 1 document: the reader's migration sets
 *  `model.macs_convention` to `schema.MACS_CONVENTION_V1`, "old convention (schema 1): ...") or
 *  'unknown' (no convention stated). The one place the dashboard reads it. */
export function macsConvention(arch: Architecture): 'current' | 'old' | 'unknown' {
  const c = arch.model?.macs_convention;
  if (typeof c !== 'string' || !c) return 'unknown';
  return c.startsWith('old convention') ? 'old' : 'current';
}

/** True when the document's MACs are in the old (schema 1) convention: shown, marked, never compared. */
export function isOldMacs(arch: Architecture): boolean {
  return macsConvention(arch) === 'old';
}

/** The MACs column / total label for a document. */
export function macsLabel(arch: Architecture): string {
  return isOldMacs(arch) ? 'MACs (old convention)' : 'MACs';
}
