// The exam page's one state object (see state.js for its fields and rules).
//
// Exported API: S

import { createState } from './state.js';

export const S = createState();
