// The exam page's elements (exam.html), looked up once, and the live regions.
//
// Exported API: el (every element the page uses, by role), announce(text, assertive = false)

const $ = (id) => document.getElementById(id);

export const el = {
  main: $('main'), view: $('view'),
  barTitle: $('bar-title'), timerBox: $('timer-box'), timer: $('timer'), timerLabel: $('timer-label'),
  conn: $('conn'), connText: $('conn-text'), who: $('who'),
  banner: $('banner'), bannerText: $('banner-text'), retryNow: $('retry-now'), takeOver: $('take-over'),
  timerWarning: $('timer-warning'), timerWarningText: $('timer-warning-text'), timerWarningClose: $('timer-warning-close'),
  alert: $('alert'), announce: $('announce'), notice: $('notice'),
  loadingView: $('loading-view'), loadingTitle: $('loading-title'), loadingText: $('loading-text'),
  tokenView: $('token-view'), tokenForm: $('token-form'), token: $('token'), tokenExam: $('token-exam'), tokenError: $('token-error'),
  problemView: $('problem-view'), problemTitle: $('problem-title'), problemText: $('problem-text'),
  readyView: $('ready-view'), examTitle: $('exam-title'), factTotal: $('fact-total'), factDuration: $('fact-duration'),
  factNavigation: $('fact-navigation'), ruleNavigation: $('rule-navigation'), start: $('start'), startError: $('start-error'),
  questionView: $('question-view'), block: $('block'), blockText: $('block-text'),
  qNumber: $('q-number'), qPos: $('q-pos'), qTotal: $('q-total'), qMeta: $('q-meta'), prompt: $('prompt'),
  answerFs: $('answer-fs'), answerLegend: $('answer-legend'), answerBody: $('answer-body'), inputError: $('input-error'),
  saveStatus: $('save-status'), saveDetail: $('save-detail'), clear: $('clear'),
  flag: $('flag'), flagText: $('flag-text'), prev: $('prev'), next: $('next'), linearNote: $('linear-note'),
  progress: $('progress'), progressFill: $('progress-fill'), navigator: $('navigator'),
  submit: $('submit'), submitError: $('submit-error'),
  resultView: $('result-view'), resultIcon: $('result-icon'), resultTitle: $('result-title'), resultReason: $('result-reason'), result: $('result'),
  footerExam: $('footer-exam'), attemptWrap: $('attempt-wrap'), attempt: $('attempt'),
  submitDialog: $('submit-dialog'), submitSummary: $('submit-summary'), submitDetails: $('submit-details'),
  submitCancel: $('submit-cancel'), submitConfirm: $('submit-confirm'),
  nextDialog: $('next-dialog'), nextText: $('next-text'), nextCancel: $('next-cancel'), nextConfirm: $('next-confirm'),
};

export function announce(text, assertive = false) {
  const node = assertive ? el.alert : el.announce;
  node.textContent = '';
  // a fresh text node after a tick makes screen readers repeat identical messages
  setTimeout(() => { node.textContent = text; }, 30);
}
