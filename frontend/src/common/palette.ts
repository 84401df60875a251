// Colours of the dashboard's drawings in TensorBoard's light and dark themes (one palette per
// theme: surfaces, text, edges, highlights, compare marks and one colour per layer category), and
// the fonts the drawings measure and export with.
import type { Category } from './categories';

export interface Palette {
  dark: boolean;
  bg: string;
  nodeFill: string;
  text: string;
  text2: string;
  edge: string;
  edgeLabel: string;
  groupFill: string;
  groupStroke: string;
  groupHeader: string;
  accent: string;        // selection
  match: string;         // search hits
  trace: string;
  added: string;
  removed: string;
  changed: string;
  renamed: string;
  cat: Record<Category, string>;
}

const LIGHT_CAT: Record<Category, string> = {
  input: '#546e7a', conv: '#1e6fd9', linear: '#8e24aa', norm: '#2e9d48', activation: '#e5531a',
  pool: '#00897b', dropout: '#8d8d8d', reshape: '#8d6e63', merge: '#d81b60', attention: '#3f51b5',
  embedding: '#0097a7', recurrent: '#6a3fc1', math: '#9e9d24', container: '#607d8b', other: '#78909c',
};
const DARK_CAT: Record<Category, string> = {
  input: '#90a4ae', conv: '#64a8ff', linear: '#ce7ee0', norm: '#6fd08a', activation: '#ff8a5c',
  pool: '#4dd0c0', dropout: '#b0b0b0', reshape: '#c4a092', merge: '#ff6fa3', attention: '#8e9bff',
  embedding: '#4fd4e6', recurrent: '#b39dff', math: '#d4d36a', container: '#90a4ae', other: '#a7b6bd',
};

// Surfaces follow the dashboard's own stylesheet (TensorBoard's #303030 in dark mode); the compare
// colours are the dashboard's added / removed / changed / renamed line colours.
export const LIGHT: Palette = {
  dark: false, bg: '#ffffff', nodeFill: '#ffffff', text: '#212121', text2: '#616161',
  edge: '#9e9e9e', edgeLabel: '#616161', groupFill: '#f5f7f9', groupStroke: '#c3ccd3',
  groupHeader: '#e6ecf0', accent: '#ef6c00', match: '#00acc1', trace: '#1e88e5',
  added: '#43a047', removed: '#e53935', changed: '#f9a825', renamed: '#7e57c2', cat: LIGHT_CAT,
};
export const DARK: Palette = {
  dark: true, bg: '#303030', nodeFill: '#3a3a3a', text: '#e8e8e8', text2: '#b0b0b0',
  edge: '#8a8a8a', edgeLabel: '#b0b0b0', groupFill: '#363636', groupStroke: '#5a5a5a',
  groupHeader: '#424242', accent: '#ff9800', match: '#26c6da', trace: '#64b5f6',
  added: '#66bb6a', removed: '#ef5350', changed: '#fbc02d', renamed: '#9575cd', cat: DARK_CAT,
};

/** The palette of a theme. */
export function paletteFor(dark: boolean): Palette {
  return dark ? DARK : LIGHT;
}

export const FONT = '12px Roboto, "Helvetica Neue", Arial, sans-serif';
export const FONT_BOLD = '600 12px Roboto, "Helvetica Neue", Arial, sans-serif';
export const FONT_FAMILY = 'Roboto, "Helvetica Neue", Arial, sans-serif';
export const MONO_FAMILY = '"Roboto Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace';
