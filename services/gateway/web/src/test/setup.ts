import '@testing-library/jest-dom/vitest';

import i18n from '../i18n';

// The tests read the English labels: every test starts in English, whatever the one before switched to
// (a Spanish test switches with i18n.changeLanguage('es') or the ES button).
beforeEach(async () => {
  await i18n.changeLanguage('en');
});
