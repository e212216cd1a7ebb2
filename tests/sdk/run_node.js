'use strict';
// Runs calls of the Node SDK (baidu-aip-sdk) against a facesvc and prints their answers.
//
// stdin: {"sdk": package folder, "base": "http://127.0.0.1:port", "keys": [app id, API key,
//         secret key], "signed": bool, "timeout_ms": int, "calls": [[method, [args...]], ...]}
// stdout: {"answers": [...], "token": the access token the SDK used, or ""}
//
// The SDK is not edited. Its HTTP layer is the `request` module: the module's export is
// replaced, before the SDK loads it, by a wrapper that sends Baidu's URLs to `base` (the Host
// header the SDK signs stays aip.baidubce.com, as for a client that resolves Baidu's name to
// facesvc). `signed` makes the client sign every request (bce-auth-v1) instead of sending a
// token: 1.x is told it has a Baidu Cloud user's keys (the hook it keeps for telling them by key
// length) and fetches no token; 4.x fetches one and is told its scope lacks brain_all_scope, as
// the Python SDKs are (tests/sdks.py NO_SCOPE). Each hook is absent from the other version.
const path = require('path');

const BAIDU = 'https://aip.baidubce.com';
const AUTHTYPE_BCE = 1;

function readStdin() {
    return new Promise(resolve => {
        let text = '';
        process.stdin.setEncoding('utf8');
        process.stdin.on('data', chunk => { text += chunk; });
        process.stdin.on('end', () => resolve(JSON.parse(text)));
    });
}

function redirect(sdk, base) {
    const requestPath = require.resolve('request', {paths: [sdk]});
    const request = require(requestPath);
    const redirected = function (options, callback) {
        const url = options.url.startsWith(BAIDU) ? base + options.url.slice(BAIDU.length) : options.url;
        return request(Object.assign({}, options, {url: url}), callback);
    };
    require.cache[requestPath].exports = redirected;
}

function plain(answer) {
    // Network failures reach the caller as Error objects; keep what identifies them.
    if (answer instanceof Error) {
        return {node_error: {code: answer.code || null, message: answer.message}};
    }
    return answer;
}

async function main() {
    const plan = await readStdin();
    redirect(plan.sdk, plan.base);
    if (plan.timeout_ms) {
        require(path.join(plan.sdk, 'src', 'http', 'httpClient')).DEFAULT_TIMEOUT = plan.timeout_ms;
    }
    const AipFace = require(plan.sdk).face;
    class CloudUserFace extends AipFace {
        getAuthTypeByAkLen() { return AUTHTYPE_BCE; }
        checkDevPermission() { return false; }
    }
    const Client = plan.signed ? CloudUserFace : AipFace;
    const client = new Client(...plan.keys);
    const answers = [];
    for (const [method, args] of plan.calls) {
        try {
            answers.push(plain(await client[method](...args)));
        } catch (error) {
            answers.push(plain(error));
        }
    }
    const token = client.devAccessToken && client.devAccessToken.token ? client.devAccessToken.token : '';
    process.stdout.write(JSON.stringify({answers: answers, token: token}));
}

main().catch(error => {
    process.stderr.write(String(error && error.stack || error));
    process.exit(1);
});
