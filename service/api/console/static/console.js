"use strict";
// facesvc console. It signs in through /oauth/2.0/token and then calls the Baidu endpoints
// with the access token, as any client does: the console has no API of its own. Only the
// token is kept (sessionStorage, gone with the tab); the secret leaves the page once.

const API = "/rest/2.0/face/v2/";
const SAME_PERSON = 80; // a score of 80 or more means "same person" (README, Scores)
const MAX_SIDE = 1600; // photos are scaled down so their base64 stays under detect's 2 MB
const MAX_GROUPS = 100; // identify takes at most 100 group ids
const FACE_FIELDS = "age,gender,expression,qualities";
const EXPRESSIONS = ["none", "smile", "laugh"];

const state = {
  token: sessionStorage.getItem("facesvc.token"),
  app: sessionStorage.getItem("facesvc.app"),
  groups: [],
  group: null,
  photo: null, // {canvas, base64, width, height}
  analyses: 0, // finished analyses, published as #photo-status[data-done] for scripted browsers
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(code, message) {
    super(`${message} (${code})`);
    this.code = code;
  }
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function call(path, params) {
  const body = new URLSearchParams({ access_token: state.token, ...params });
  const answer = await (await fetch(API + path, { method: "POST", body })).json();
  if (answer.error_code) {
    if (answer.error_code === 110 || answer.error_code === 111) signOut("Your session ended: sign in again.");
    throw new ApiError(answer.error_code, answer.error_msg);
  }
  return answer;
}

// -- session ---------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: $("api-key").value.trim(),
    client_secret: $("secret-key").value,
  });
  $("secret-key").value = "";
  $("sign-in-error").textContent = "";
  const response = await fetch("/oauth/2.0/token", { method: "POST", body });
  const answer = await response.json();
  if (!response.ok) {
    $("sign-in-error").textContent = answer.error_description || "Sign-in failed";
    return;
  }
  state.token = answer.access_token;
  state.app = answer.access_token.split("-").pop(); // Baidu's token ends in "-<app id>"
  sessionStorage.setItem("facesvc.token", state.token);
  sessionStorage.setItem("facesvc.app", state.app);
  await showApp();
}

function signOut(message) {
  sessionStorage.removeItem("facesvc.token");
  sessionStorage.removeItem("facesvc.app");
  state.token = state.app = null;
  $("app-panel").hidden = $("session").hidden = true;
  $("sign-in-panel").hidden = false;
  $("sign-in-error").textContent = typeof message === "string" ? message : "";
}

async function showApp() {
  $("sign-in-panel").hidden = true;
  $("app-panel").hidden = $("session").hidden = false;
  $("app-id").textContent = state.app;
  await loadGroups();
}

// -- groups and users --------------------------------------------------------------------

async function loadGroups() {
  state.groups = (await call("faceset/group/getlist", { start: 0, num: 1000 })).result;
  if (!state.groups.includes(state.group)) state.group = state.groups[0] || null;
  const list = $("groups");
  list.replaceChildren();
  if (!state.groups.length) list.append(element("li", "No groups yet: register someone", "empty"));
  for (const group of state.groups) {
    const item = element("li", group, group === state.group ? "selected" : "");
    item.dataset.group = group;
    item.addEventListener("click", () => selectGroup(group));
    list.append(item);
  }
  if (state.group && !$("reg-group").value) $("reg-group").value = state.group;
  await loadUsers();
}

async function selectGroup(group) {
  state.group = group;
  for (const item of $("groups").children) item.classList.toggle("selected", item.dataset.group === group);
  $("reg-group").value = group;
  await loadUsers();
}

async function loadUsers() {
  const list = $("users");
  list.replaceChildren();
  $("users-title").textContent = state.group ? `Users in ${state.group}` : "Users";
  if (!state.group) return;
  const users = (await call("faceset/group/getusers", { group_id: state.group, start: 0, num: 1000 })).result;
  for (const user of users) {
    const item = element("li");
    item.dataset.uid = user.uid;
    const name = element("span", user.uid, "uid");
    name.append(element("small", user.user_info));
    const remove = element("button", "Delete", "danger");
    remove.type = "button";
    remove.title = `Delete ${user.uid} from ${state.group}`;
    remove.addEventListener("click", () => deleteUser(user.uid));
    item.append(name, remove);
    list.append(item);
  }
}

async function deleteUser(uid) {
  if (!confirm(`Delete ${uid} and its faces from ${state.group}?`)) return;
  await call("faceset/user/delete", { uid, group_id: state.group });
  await loadGroups();
  if (state.photo) await analyse();
}

// -- photos -----------------------------------------------------------------------------

async function openPhoto(file) {
  if (!file) return;
  const bitmap = await createImageBitmap(file).catch(() => null);
  if (!bitmap) {
    $("photo-status").textContent = `${file.name} is not an image this browser can read`;
    return;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const url = canvas.toDataURL("image/jpeg", 0.92);
  state.photo = { canvas, base64: url.split(",")[1], width: canvas.width, height: canvas.height };
  $("photo").src = url;
  $("register-status").textContent = "";
  $("stage").hidden = false;
  $("register-form").hidden = false;
  await analyse();
}

/** One face with a margin, as base64 JPEG. Identify looks at an image's largest face, so each
 * face but the largest is identified from its own crop, with the other faces greyed out: a
 * larger neighbour in the margin would otherwise be the face identified. */
function crop(face, faces) {
  const { left, top, width, height } = face.location;
  const side = Math.max(width, height) * 2;
  const x = Math.max(0, left + width / 2 - side / 2);
  const y = Math.max(0, top + height / 2 - side / 2);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(Math.min(side, state.photo.width - x));
  canvas.height = Math.round(Math.min(side, state.photo.height - y));
  const context = canvas.getContext("2d");
  context.translate(-x, -y);
  context.drawImage(state.photo.canvas, 0, 0);
  context.fillStyle = "#808080";
  for (const other of faces) {
    if (other !== face) context.fillRect(other.location.left, other.location.top, other.location.width, other.location.height);
  }
  context.drawImage(state.photo.canvas, left, top, width, height, left, top, width, height); // the face itself stays whole
  return canvas.toDataURL("image/jpeg", 0.92).split(",")[1];
}

async function identify(face, index, faces) {
  if (!state.groups.length) return null;
  const image = index === 0 ? state.photo.base64 : crop(face, faces);
  try {
    const answer = await call("identify", { group_id: state.groups.slice(0, MAX_GROUPS).join(","), image, user_top_num: 1 });
    return answer.result[0] || null;
  } catch (error) {
    if (error instanceof ApiError) return null; // no face in the crop, an empty group...
    throw error;
  }
}

async function analyse() {
  $("frame").querySelectorAll(".face-box").forEach((box) => box.remove());
  $("faces").hidden = true;
  $("photo-status").textContent = "Detecting…";
  try {
    $("photo-status").textContent = await detectAndIdentify();
  } catch (error) {
    $("photo-status").textContent = error.code === 216402 ? "No face found in this photo" : error.message;
  } finally {
    $("photo-status").dataset.done = String(++state.analyses);
  }
}

async function detectAndIdentify() {
  const params = { image: state.photo.base64, max_face_num: 10, face_fields: FACE_FIELDS };
  const faces = (await call("detect", params)).result;
  const matches = [];
  for (const [index, face] of faces.entries()) matches.push(await identify(face, index, faces));
  faces.forEach((face, index) => drawFace(face, matches[index], index));
  fillTable(faces, matches);
  return `${faces.length} face(s), ${matches.filter(isKnown).length} recognised`;
}

function isKnown(match) {
  return Boolean(match) && match.scores[0] >= SAME_PERSON;
}

function identityText(match) {
  if (!isKnown(match)) return "unknown";
  return match.user_info ? `${match.uid} · ${match.user_info}` : match.uid;
}

function drawFace(face, match, index) {
  const { left, top, width, height } = face.location;
  const box = element("div", undefined, isKnown(match) ? "face-box known" : "face-box");
  box.style.left = `${(100 * left) / state.photo.width}%`;
  box.style.top = `${(100 * top) / state.photo.height}%`;
  box.style.width = `${(100 * width) / state.photo.width}%`;
  box.style.height = `${(100 * height) / state.photo.height}%`;
  const score = match ? ` ${Math.round(match.scores[0])}` : "";
  box.append(element("span", `${index + 1} ${identityText(match)}${score}`, "label"));
  $("frame").append(box);
}

function fillTable(faces, matches) {
  const body = $("faces").querySelector("tbody");
  body.replaceChildren();
  faces.forEach((face, index) => {
    const match = matches[index];
    const quality = face.qualities ? `blur ${face.qualities.blur.toFixed(2)}, light ${Math.round(face.qualities.illumination)}` : "";
    const cells = [
      index + 1,
      match ? `${identityText(match)}${isKnown(match) ? ` (${match.group_id})` : ""}` : "—",
      match ? match.scores[0].toFixed(1) : "—",
      face.age !== undefined ? Math.round(face.age) : "",
      face.gender ? `${face.gender} ${Math.round(100 * face.gender_probability)}%` : "",
      face.expression !== undefined ? EXPRESSIONS[face.expression] : "",
      quality,
    ];
    const row = element("tr");
    for (const cell of cells) row.append(element("td", String(cell)));
    body.append(row);
  });
  $("faces").hidden = faces.length === 0;
}

async function register(event) {
  event.preventDefault();
  const uid = $("reg-uid").value.trim();
  const group = $("reg-group").value.trim();
  const params = { uid, user_info: $("reg-info").value, group_id: group, image: state.photo.base64 };
  try {
    await call("faceset/user/add", params);
  } catch (error) {
    $("register-status").textContent = error.code === 216616 ? `This photo is already registered for ${uid}` : error.message;
    return;
  }
  $("register-status").textContent = `Registered ${uid} in ${group}`;
  state.group = group;
  await loadGroups();
  await analyse();
}

// -- wiring -----------------------------------------------------------------------------

function wire() {
  $("sign-in-panel").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", loadGroups);
  $("register-form").addEventListener("submit", register);
  $("photo-input").addEventListener("change", (event) => openPhoto(event.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    openPhoto(event.dataTransfer.files[0]);
  });
  if (state.token) showApp().catch(() => signOut());
}

wire();
