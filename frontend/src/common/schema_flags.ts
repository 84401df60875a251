// What a document says about itself, read in one place for every view: which MACs convention its
// figures follow (a migrated schema 1 document's MACs are not comparable with schema 2 ones).
import type { Architecture } from '../types';

/** The MACs convention of the document's figures: 'old' when the reader's migration of a schema 1
 *  document set the flag `model.macs_comparable` to false (its sentence stays in
 *  `model.macs_convention`), 'current' (schema 2: per example, one rule for every framework) when
 *  a convention is stated, else 'unknown'. The one place the dashboard reads it. */
export function macsConvention(arch: Architecture): 'current' | 'old' | 'unknown' {
  if (arch.model?.macs_comparable === false) return 'old';
  const c = arch.model?.macs_convention;
  return typeof c === 'string' && c ? 'current' : 'unknown';
}

/** True when the document's MACs are in the old (schema 1) convention: shown, marked, never compared. */
export function isOldMacs(arch: Architecture): boolean {
  return macsConvention(arch) === 'old';
}

/** The MACs column / total label for a document. */
export function macsLabel(arch: Architecture): string {
  return isOldMacs(arch) ? 'MACs (old convention)' : 'MACs';
}
