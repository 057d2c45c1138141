// hqflow_stream_head: the streaming classifier head (numerics.head_logits).
//   SUM     every input element (n*C + c, the T values x[n][c][0..T-1], IN_BITS each) adds
//           sum_t x[n][c][t] into x_sum[c] (SUM_BITS unsigned, holds x_max * N * T); x_sum is a ring
//           of C registers that turns one place an element, so channel c is always at its head;
//   LOGITS  after the image's last element, per lane group g (P classes, G = ceil(CLASSES / P)):
//           C cycles acc[k] += w_eff[k][c] * x_sum[c] (hqflow_lanes_piped over the weight ROM of
//           hqflow_weight_rom.v, rows = input channels c, as the linear core reads it; the codes read
//           registered, the products pipelined: LAT = 1 + mul_latency(SUM_BITS) cycles, MUL_TREE as
//           there), 1 + LAT drain cycles,
//           1 cycle handing logits[k] = (acc[k] << BF) + bias_int[k] (LOGIT_BITS two's complement,
//           exact) to the output bank (waits while it drains), which streams them out one a beat.
// Stream out: the CLASSES logits in class order, tlast on the last. The next image is taken once the
// logits are in the bank. `active` is high in the cycles the core advances:
//   active cycles per image = N * C + G * (C + 2 + LAT)
// BIAS_FILE: bias_int, P classes a line (LOGIT_BITS each, G lines).
module hqflow_stream_head #(
    parameter integer N = 4, C = 8, CLASSES = 4, P = 4,
    parameter integer BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
    parameter integer T = 1, IN_BITS = 1, SUM_BITS = 8, ACC_BITS = 24, LOGIT_BITS = 32, BF = 0,
    parameter ROM_FILE = "weights.mem", BIAS_FILE = "bias.mem", parameter integer MUL_TREE = 1
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   s_tvalid,
    output wire                   s_tready,
    input  wire [T*IN_BITS-1:0]   s_tdata,
    output wire                   m_tvalid,
    input  wire                   m_tready,
    output wire [LOGIT_BITS-1:0]  m_tdata,
    output wire                   m_tlast,
    output wire                   active
);
    initial begin  // elaboration-time checks of the parameters
        if (N < 1 || C < 1 || CLASSES < 1 || P < 1 || T < 1 || IN_BITS < 1)
            $error("hqflow_stream_head: sizes N %0d C %0d CLASSES %0d P %0d T %0d IN_BITS %0d must be >= 1",
                   N, C, CLASSES, P, T, IN_BITS);
        if (BITS < 1 || BITS > 32 || SUM_BITS < 1 || SUM_BITS > 64 || ACC_BITS < 1 || ACC_BITS > 64
            || LOGIT_BITS < 1 || LOGIT_BITS > 64 || BF < 0)
            $error("hqflow_stream_head: BITS %0d (1..32), SUM_BITS %0d, ACC_BITS %0d, LOGIT_BITS %0d (1..64), BF %0d (>= 0)",
                   BITS, SUM_BITS, ACC_BITS, LOGIT_BITS, BF);
    end
    localparam integer LANES_W = 64 / BITS;
    localparam integer KW = P > LANES_W ? P / LANES_W : 1;
    localparam integer GPW = LANES_W * KW / P;
    localparam integer G = (CLASSES + P - 1) / P;
    localparam integer ROW_WIDE = (G + GPW - 1) / GPW;
    localparam integer RW = 64 * KW;
    localparam integer ROM_DEPTH = C * ROW_WIDE;
    localparam integer RA = ROM_DEPTH > 1 ? $clog2(ROM_DEPTH) : 1;
    localparam integer GA = G > 1 ? $clog2(G) : 1;
    localparam integer NB = $clog2(P + 1);
    localparam [1:0] S_SUM = 2'd0, S_ACC = 2'd1, S_DRAIN = 2'd2, S_HAND = 2'd3;
    localparam integer LAT = 1 + (SUM_BITS > 1 ? 1 + ($clog2(SUM_BITS) + 1) / 2 : 0);
    reg [$clog2(LAT + 1)-1:0] drain;

    reg [1:0] state;
    reg [(N > 1 ? $clog2(N) : 1)-1:0] n;            // the token
    reg [(C > 1 ? $clog2(C) : 1)-1:0] c;            // the channel
    reg [GA-1:0] g;                                 // the lane group
    reg [(GPW > 1 ? $clog2(GPW) : 1)-1:0] wsel;     // the group's codes within a ROM line
    reg [(ROW_WIDE > 1 ? $clog2(ROW_WIDE) : 1)-1:0] wadr;  // the group's line within a ROM row
    reg [$clog2(ROM_DEPTH + 1)-1:0] c_row;          // c * ROW_WIDE
    reg [C*SUM_BITS-1:0] xs;            // channel (c + k) mod C in bits [k*SUM_BITS, +SUM_BITS)
    assign s_tready = state == S_SUM;
    wire put = s_tvalid && s_tready;
    integer t;
    reg [SUM_BITS-1:0] tsum;
    always @* begin
        tsum = 0;
        for (t = 0; t < T; t = t + 1) tsum = tsum + s_tdata[t*IN_BITS +: IN_BITS];
    end
    reg n_first;                        // n == 0 (a register: the sum's operand select, not a compare)
    wire [SUM_BITS-1:0] head_sum = (n_first ? {SUM_BITS{1'b0}} : xs[SUM_BITS-1:0]) + tsum;
    reg [C*SUM_BITS-1:0] xs_add, xs_turn;   // the ring turned one place, its head replaced (SUM) or kept
    always @* begin
        xs_add = xs >> SUM_BITS;
        xs_add[(C-1)*SUM_BITS +: SUM_BITS] = head_sum;
        xs_turn = xs >> SUM_BITS;
        xs_turn[(C-1)*SUM_BITS +: SUM_BITS] = xs[SUM_BITS-1:0];
    end

    wire [RA-1:0] rom_addr = c_row + wadr;
    wire [RW-1:0] rom_q;
    hqflow_weight_rom #(.WIDTH(RW), .DEPTH(ROM_DEPTH), .AW(RA), .FILE(ROM_FILE)) rom (
        .clk(clk), .addr(rom_addr), .q(rom_q));
    wire [GA-1:0] tab_addr = g;
    wire [P*LOGIT_BITS-1:0] bias_q;
    hqflow_weight_rom #(.WIDTH(P*LOGIT_BITS), .DEPTH(G), .AW(GA), .FILE(BIAS_FILE)) bias_rom (clk, tab_addr, bias_q);
    wire [P*BITS-1:0] codes;
    hqflow_rom_select #(.P(P), .BITS(BITS), .KW(KW)) select (.line(rom_q), .wsel(wsel), .codes(codes));
    wire [P-1:0] live = live_l(g);
    reg [LAT:0] m_valid, m_first;       // a ROM row read (bit 0: its codes out), its first channel; bit LAT: its products land
    reg [SUM_BITS-1:0] xd, xe;          // x_sum[c] with the ROM's read; with the codes registered
    reg [P*BITS-1:0] codes_r;
    always @(posedge clk) begin codes_r <= codes; xe <= xd; end
    wire [P*ACC_BITS-1:0] prods;
    generate
        if (SUM_BITS > 1) begin : piped
            hqflow_lanes_piped #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP),
                                 .X_BITS(SUM_BITS), .ACC_BITS(ACC_BITS), .MUL_TREE(MUL_TREE)) lanes (
                .clk(clk), .codes(codes_r), .live(live), .x(xe), .prods(prods));
        end else begin : gated
            hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(1),
                           .ACC_BITS(ACC_BITS)) lanes (.codes(codes_r), .live(live), .x(xe), .prods(prods));
        end
    endgenerate
    reg [P*ACC_BITS-1:0] acc;

    reg [P*LOGIT_BITS-1:0] bank;
    reg [NB-1:0] bank_n;
    reg bank_last;
    assign m_tvalid = bank_n != 0;
    assign m_tdata = bank[LOGIT_BITS-1:0];
    assign m_tlast = bank_last && bank_n == 1;
    wire bank_free = bank_n == 0;
    assign active = put || state == S_ACC || state == S_DRAIN || (state == S_HAND && bank_free);

    integer p, cp;                      // (the combinational block has its own loop variable)
    reg signed [LOGIT_BITS-1:0] a_wide;
    reg [P*LOGIT_BITS-1:0] logits;
    always @* begin
        for (cp = 0; cp < P; cp = cp + 1) begin
            a_wide = $signed(acc[cp*ACC_BITS +: ACC_BITS]);
            logits[cp*LOGIT_BITS +: LOGIT_BITS] = (a_wide <<< BF) + bias_q[cp*LOGIT_BITS +: LOGIT_BITS];
        end
    end

    always @(posedge clk) begin
        m_valid <= {m_valid, state == S_ACC};
        m_first <= {m_first, c == 0};
        if (m_valid[LAT])
            for (p = 0; p < P; p = p + 1)
                acc[p*ACC_BITS +: ACC_BITS] <= (m_first[LAT] ? {ACC_BITS{1'b0}} : acc[p*ACC_BITS +: ACC_BITS])
                                              + prods[p*ACC_BITS +: ACC_BITS];
        if (m_tvalid && m_tready) begin bank <= bank >> LOGIT_BITS; bank_n <= bank_n - 1'b1; end
        case (state)
            S_SUM: if (put) begin
                xs <= xs_add;
                if (c != C - 1) c <= c + 1'b1;
                else begin
                    c <= 0;
                    n_first <= n == N - 1;
                    if (n != N - 1) n <= n + 1'b1;
                    else begin n <= 0; g <= 0; wsel <= 0; wadr <= 0; c_row <= 0; state <= S_ACC; end
                end
            end
            S_ACC: begin                    // read ROM row c; x_sum[c] is at the ring's head
                xd <= xs[SUM_BITS-1:0];
                xs <= xs_turn;
                c_row <= c_row + ROW_WIDE;
                if (c != C - 1) c <= c + 1'b1;
                else begin c <= 0; state <= S_DRAIN; drain <= LAT; end
            end
            S_DRAIN: if (drain == 0) state <= S_HAND; else drain <= drain - 1'b1;
            default: if (bank_free) begin   // S_HAND
                bank <= logits;
                bank_n <= g == G - 1 ? CLASSES - (G - 1) * P : P;
                bank_last <= g == G - 1;
                c_row <= 0;
                if (g != G - 1) begin
                    g <= g + 1'b1;
                    if (wsel == GPW - 1) begin wsel <= 0; wadr <= wadr + 1'b1; end else wsel <= wsel + 1'b1;
                    state <= S_ACC;
                end else begin g <= 0; wsel <= 0; wadr <= 0; state <= S_SUM; end
            end
        endcase
        if (rst) begin state <= S_SUM; n <= 0; n_first <= 1; c <= 0; g <= 0; bank_n <= 0; m_valid <= 0; end
    end

    function [P-1:0] live_l(input [31:0] grp);
        integer k;
        for (k = 0; k < P; k = k + 1) live_l[k] = grp != G - 1 || k < CLASSES - (G - 1) * P;
    endfunction

    initial begin state = S_SUM; n = 0; n_first = 1; c = 0; g = 0; bank_n = 0; m_valid = 0; end
endmodule
