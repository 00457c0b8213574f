// English and Chinese. The outcome words are what a guard reads; keep them
// short.
export type Lang = "en" | "zh";

const en = {
  VALID: "VALID",
  REVOKED: "REVOKED",
  EXPIRED: "EXPIRED",
  NOT_YET_VALID: "NOT YET VALID",
  BAD_SIGNATURE: "FORGED",
  UNKNOWN_SIGNER: "UNKNOWN ISSUER",
  SIGNER_REVOKED: "ISSUER REVOKED",
  MALFORMED: "NOT A BADGE",
  STATUS_UNAVAILABLE: "STATUS UNAVAILABLE",
  GREEN: "Green",
  YELLOW: "Yellow",
  RED: "Red",
  statusNotAsked: "status not asked",
  statusAsked: "status checked by the station",
  holder: "Holder",
  idTail: "ID ends",
  validUntil: "Valid until",
  issuer: "Issuer",
  next: "Scan next",
  point: "Point the camera at the badge's QR code",
  noCamera: "No camera: ",
  list: (seq: string, age: string) => `List ${seq} · ${age} old`,
  stale: "STALE",
  noList: "No trust list: connect to the station",
  listRefused: (why: string) => `Trust list refused (${why})`,
  sunset: "Trust list past its sunset: nothing can be checked",
  paired: (name: string) => `Station ${name}`,
  unpaired: "Not paired: offline checks only",
  gatewayDown: "gateway unreachable",
  pairFailed: "Pairing failed",
  counts: "Today",
  reason: "reason",
};
type Strings = typeof en;

const zh: Strings = {
  VALID: "有效",
  REVOKED: "已撤销",
  EXPIRED: "已过期",
  NOT_YET_VALID: "尚未生效",
  BAD_SIGNATURE: "伪造",
  UNKNOWN_SIGNER: "未知签发方",
  SIGNER_REVOKED: "签发方已撤销",
  MALFORMED: "无法识别",
  STATUS_UNAVAILABLE: "状态无法查询",
  GREEN: "绿码",
  YELLOW: "黄码",
  RED: "红码",
  statusNotAsked: "未查询状态",
  statusAsked: "已由站点查询状态",
  holder: "持有人",
  idTail: "证件尾号",
  validUntil: "有效期至",
  issuer: "签发城市",
  next: "扫描下一个",
  point: "请将摄像头对准通行码",
  noCamera: "无法使用摄像头：",
  list: (seq: string, age: string) => `信任列表 ${seq} · ${age}前`,
  stale: "已过期待更新",
  noList: "无信任列表：请连接站点",
  listRefused: (why: string) => `信任列表被拒绝（${why}）`,
  sunset: "信任列表已终止：无法核验",
  paired: (name: string) => `站点 ${name}`,
  unpaired: "未配对：仅离线核验",
  gatewayDown: "网关不可达",
  pairFailed: "配对失败",
  counts: "今日",
  reason: "原因",
};

let current: Lang = "en";
export const t = (): Strings => (current === "zh" ? zh : en);
export const lang = (): Lang => current;
export function setLang(l: Lang): void {
  current = l;
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
  localStorage.setItem("tessera.lang", l);
}
export function initialLang(): Lang {
  const saved = localStorage.getItem("tessera.lang");
  if (saved === "en" || saved === "zh") return saved;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

/** "3 h", "2 d", "5 min" in the current language. */
export function age(seconds: number): string {
  const zhUnits = current === "zh";
  if (seconds < 3600) return `${Math.max(0, Math.floor(seconds / 60))}${zhUnits ? " 分钟" : " min"}`;
  if (seconds < 2 * 86_400) return `${Math.floor(seconds / 3600)}${zhUnits ? " 小时" : " h"}`;
  return `${Math.floor(seconds / 86_400)}${zhUnits ? " 天" : " d"}`;
}
